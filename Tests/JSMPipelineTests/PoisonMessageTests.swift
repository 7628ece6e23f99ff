import AMQP
import Foundation
import JSMContracts
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMServices
import SwiftProtobuf
import Testing

extension EndToEndTests {
    /// One message of the bad-input corpus and the park reason proto-docs gives it.
    struct PoisonMessage {
        let name: String
        let message: OutboundMessage
        let reason: ParkReason
    }

    @Test(
        "random bytes, a truncated protobuf, a future schema version and unknown methods are parked with their reason; the same workers then migrate"
    )
    func poisonMessagesAreParked() async throws {
        try await EndToEnd.withWorld(users: 600, workers: 2) { world, connection in
            // The workers declare the topology when they start; declaring it here too (idempotent)
            // means the poison is routed even if it is published before they are up.
            try await connection.declare(MigrationBrokerTopology().declarations)
            let poison = try Self.poisonCorpus()
            try await connection.publish(poison.map(\.message))

            let parked = try await Self.take(
                poison.count, from: MigrationTopology.parkedQueue, connection: connection, within: .seconds(120))
            let byMessageId = Dictionary(parked.map { ($0.properties.messageId ?? "", $0) }) { first, _ in first }
            for item in poison {
                let copy = try #require(
                    byMessageId[item.message.properties.messageId ?? ""], "\(item.name) was not parked")
                #expect(
                    copy.properties.headers[HeaderName.parkReason]?.stringValue == item.reason.rawValue, "\(item.name)")
                #expect(copy.properties.headers[HeaderName.parkError]?.stringValue?.isEmpty == false, "\(item.name)")
                // Nothing lost: the parked copy is the original, byte for byte, with its properties.
                #expect(copy.body == item.message.body, "\(item.name)")
                #expect(copy.properties.type == item.message.properties.type, "\(item.name)")
                #expect(copy.properties.correlationId == item.message.properties.correlationId, "\(item.name)")
            }
            // Parked before any site call: none of the poison's people got an account.
            let accounts = try await EndToEnd.siteAccounts(world.site)
            #expect(!accounts.contains { $0.emailAddress.hasPrefix("poison.person.") })
            // Back to the parked queue: they wait there for an operator, as in production.
            for delivery in parked { delivery.nack(requeue: true) }
            #expect(world.workers.exited.isEmpty, "a poison message took a worker down: see worker-*.log")

            // The same worker processes then carry out a real migration.
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let (_, verdict) = try await world.migrate(
                world.request("after-poison", projects: projects, batchSize: 150), connection: connection,
                timeout: .seconds(300))
            #expect(verdict.reconciled && verdict.repliesMatchLedger)
            #expect(verdict.batchStates[.parked, default: 0] == 0)
            #expect(verdict.batchStates[.done, default: 0] > 1)
            #expect(world.workers.exited.isEmpty, "a worker exited during the migration")
            // Still every poison message in jsm.parked, and nothing else (bounded wait for the requeue).
            var ready = -1
            for _ in 0..<100 {
                ready = Int(try await connection.queueCounts(MigrationTopology.parkedQueue).ready)
                if ready == poison.count { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(ready == poison.count)
        }
    }

    @Test("a real batch carrying a policy value from a newer producer is parked, not guessed: no account, no mapping")
    func unknownPolicyIsParked() async throws {
        try await EndToEnd.withWorld(users: 600, workers: 0) { world, connection in
            // Migrating in advance: the producer cuts and publishes the identity batches itself.
            let request = world.request(
                "newer-policy", projects: [], scope: ScopeOptions(customers: .all, users: .all), batchSize: 100)
            _ = try await world.source.withSource { jira in
                try await MigrationProducer(ledger: world.ledger, source: jira).start(request, connection: connection)
            }
            // A newer producer's batch: the same batch with an invalid-email policy this worker
            // does not know, in place of the original (acked once the replacement is confirmed).
            let consumer = try await connection.consume(queue: RPCMethod.migrateIdentities.queueName, prefetch: 1)
            var iterator = consumer.makeAsyncIterator()
            let original = try #require(try await iterator.next())
            var batch = try JSMIdentityBatch(serializedBytes: original.body)
            batch.options.invalidEmail = .UNRECOGNIZED(7)
            try await connection.publish(
                OutboundMessage(
                    exchange: MigrationTopology.workExchange, routingKey: original.routingKey,
                    body: try batch.serializedBytes(), properties: original.properties))
            original.ack()
            // The next delivery (prefetch 1) proves the broker took the ack; it goes straight back.
            let next = try #require(try await iterator.next())
            next.nack(requeue: true)
            consumer.cancel()

            let workers = try world.spawnWorkers(2, executable: EndToEnd.executable, namePrefix: "older")
            let verdict = try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
                group.addTask {
                    try await MigrationAggregator(ledger: world.ledger).run(
                        connection: connection, until: "newer-policy", checkInterval: .seconds(1))
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(180))
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
            #expect(workers.exited.isEmpty, "a worker exited: see older-*.log")
            await workers.terminate()
            let finished = try #require(verdict, "the aggregator did not finish in time")
            #expect(
                finished.batchStates[.parked] == 1 && finished.state == .incomplete,
                "\(finished.batchStates) \(finished.state) \(finished.totals.overall)")
            let parked = try #require(try await world.ledger.failedBatches(migrationId: "newer-policy").first)
            #expect(parked.batchId == batch.header.batchID)
            #expect(parked.lastError?.contains("invalid_email policy") == true, "\(parked.lastError ?? "")")
            // Nothing was guessed: no mapping row and no new account for any identity of the batch.
            let seeded = Set(world.sample.siteAccounts.map(\.email.value))
            let accounts = Set(try await EndToEnd.siteAccounts(world.site).map(\.emailAddress))
            #expect(!batch.identities.isEmpty)
            for identity in batch.identities {
                let mapping = try await world.ledger.mapping(
                    siteId: world.siteLocation.siteId, userKey: identity.userKey)
                #expect(mapping == nil, "\(identity.userKey) was decided under a policy the worker does not know")
                if !seeded.contains(identity.normalizedEmail) {
                    #expect(!accounts.contains(identity.normalizedEmail), "\(identity.userKey) got an account")
                }
            }
        }
    }

    /// The poison of the issue's corpus, each as the producer would have sent it but for its defect.
    static func poisonCorpus() throws -> [PoisonMessage] {
        let header = JSMMessageHeader(migrationID: "poison", batchID: "identities-0")
        let batch = Self.identityBatch(header: header)
        let good = try RPCEnvelope.request(.migrateIdentities, header: header, body: batch)

        // Random bytes that do not decode as a batch (the seed is fixed; checked, not assumed).
        var random = SplitMix64(seed: 0xBAD_1D5)
        var noise: [UInt8] = []
        for _ in 0..<64 {
            noise = (0..<300).map { _ in UInt8.random(in: 0...255, using: &random) }
            if (try? JSMIdentityBatch(serializedBytes: noise)) == nil { break }
        }
        #expect(throws: (any Error).self) { try JSMIdentityBatch(serializedBytes: noise) }
        var randomBytes = good
        randomBytes.body = noise
        randomBytes.properties.messageId = "poison-random-bytes"

        // A batch cut inside a field (the longest prefix that does not decode: a cut at a field
        // boundary would be a shorter valid batch, which the contract tests cover).
        var cut = good.body.count - 1
        for length in stride(from: good.body.count - 1, to: 0, by: -1) {
            cut = length
            if (try? JSMIdentityBatch(serializedBytes: Array(good.body.prefix(length)))) == nil { break }
        }
        #expect(throws: (any Error).self) { try JSMIdentityBatch(serializedBytes: Array(good.body.prefix(cut))) }
        var truncated = good
        truncated.body = Array(good.body.prefix(cut))
        truncated.properties.messageId = "poison-truncated"

        // A valid group batch from a producer of schema 2 (header and body agree on it).
        var futureHeader = JSMMessageHeader(migrationID: "poison", batchID: "groups-0")
        futureHeader.schemaVersion = SchemaVersion.current + 1
        var groups = JSMGroupBatch()
        groups.header = futureHeader
        groups.targetSiteID = "local-site"
        var future = try RPCEnvelope.request(.migrateGroups, header: futureHeader, body: groups)
        future.properties.messageId = "poison-future-schema"

        // A method no worker has, routed to a real work queue; and a reply sent as a request.
        var unknown = try RPCEnvelope.request(
            .migrateMemberships, header: JSMMessageHeader(migrationID: "poison", batchID: "memberships-0"),
            body: JSMMembershipBatch())
        unknown.properties.type = "DeleteEveryAccount"
        unknown.properties.messageId = "poison-unknown-method"
        var replyAsRequest = try RPCEnvelope.request(
            .expandProject, header: JSMMessageHeader(migrationID: "poison", batchID: "project-1"),
            body: JSMProjectScope())
        replyAsRequest.properties.type = RPCMethod.expandProject.replyTypeProperty
        replyAsRequest.properties.messageId = "poison-reply-type"

        // A valid batch that says it is JSON.
        var json = good
        json.properties.contentType = "application/json"
        json.properties.messageId = "poison-content-type"

        // Decodable batches that break the contract: a policy value from a newer producer, an
        // unset policy, an identity of no known kind, and headers that disagree with the body.
        func variant(_ batchId: String, _ change: (inout JSMIdentityBatch) -> Void) throws -> OutboundMessage {
            let header = JSMMessageHeader(migrationID: "poison", batchID: batchId)
            var body = Self.identityBatch(header: header)
            change(&body)
            var message = try RPCEnvelope.request(.migrateIdentities, header: header, body: body)
            message.properties.messageId = "poison-\(batchId)"
            return message
        }
        let futurePolicy = try variant("identities-1") { $0.options.invalidEmail = .UNRECOGNIZED(7) }
        let unsetPolicy = try variant("identities-2") { $0.options.duplicateEmail = .unspecified }
        let unknownKind = try variant("identities-3") { $0.identities[3].kind = .UNRECOGNIZED(9) }
        var otherMigration = try variant("identities-4") { _ in }
        otherMigration.properties.headers[HeaderName.migrationID] = .string("another-migration")

        return [
            PoisonMessage(name: "a policy value from a newer schema", message: futurePolicy, reason: .invalidMessage),
            PoisonMessage(name: "an unset policy", message: unsetPolicy, reason: .invalidMessage),
            PoisonMessage(name: "an identity of unknown kind", message: unknownKind, reason: .invalidMessage),
            PoisonMessage(name: "headers disagreeing with the body", message: otherMigration, reason: .invalidMessage),
            PoisonMessage(name: "random bytes", message: randomBytes, reason: .undecodable),
            PoisonMessage(name: "truncated protobuf", message: truncated, reason: .undecodable),
            PoisonMessage(name: "future schema version", message: future, reason: .unsupportedSchemaVersion),
            PoisonMessage(name: "unknown method type", message: unknown, reason: .unknownMethod),
            PoisonMessage(name: "a reply type as request", message: replyAsRequest, reason: .unknownMethod),
            PoisonMessage(name: "wrong content type", message: json, reason: .undecodable),
        ]
    }

    /// A small identity batch for the local site, as the producer would send it.
    static func identityBatch(header: JSMMessageHeader) -> JSMIdentityBatch {
        var batch = JSMIdentityBatch()
        batch.header = header
        batch.targetSiteID = "local-site"
        batch.options.users = .related
        batch.options.customers = .related
        batch.options.invalidEmail = .block
        batch.options.duplicateEmail = .merge
        batch.batchCount = 1
        batch.identities = (0..<20).map { index in
            var identity = JSMIdentity()
            identity.userKey = "JIRAUSER\(900_000 + index)"
            identity.userName = "poison.person.\(index)"
            identity.displayName = "Poison Person \(index)"
            identity.email = "poison.person.\(index)@example.com"
            identity.normalizedEmail = identity.email
            identity.kind = .customer
            identity.directoryID = 1
            return identity
        }
        return batch
    }

    /// Takes `count` deliveries from `queue` (unsettled: the caller settles them), or fails after `timeout`.
    static func take(_ count: Int, from queue: String, connection: AMQPConnection, within timeout: Duration)
        async throws -> [AMQPDelivery]
    {
        let consumer = try await connection.consume(queue: queue, prefetch: UInt16(clamping: count))
        defer { consumer.cancel() }
        let taken = try await withThrowingTaskGroup(of: [AMQPDelivery]?.self) { group in
            group.addTask {
                var taken: [AMQPDelivery] = []
                for try await delivery in consumer {
                    taken.append(delivery)
                    if taken.count == count { break }
                }
                return taken
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let taken, taken.count == count else {
            throw HarnessFailure("fewer than \(count) messages reached \(queue) within \(timeout)")
        }
        return taken
    }
}
