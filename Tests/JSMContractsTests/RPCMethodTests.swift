import JSMContracts
import SwiftProtobuf
import Testing

@Suite("RPC method names and topology")
struct RPCMethodTests {
    @Test("the four methods map to the documented queues and routing keys")
    func queueNames() {
        let documented: [RPCMethod: (type: String, queue: String)] = [
            .expandProject: ("ExpandProject", "jsm.work.ExpandProject"),
            .migrateIdentities: ("MigrateIdentities", "jsm.work.MigrateIdentities"),
            .migrateGroups: ("MigrateGroups", "jsm.work.MigrateGroups"),
            .migrateMemberships: ("MigrateMemberships", "jsm.work.MigrateMemberships"),
        ]
        #expect(RPCMethod.allCases.count == documented.count)
        for method in RPCMethod.allCases {
            let expected = documented[method]
            #expect(method.typeProperty == expected?.type)
            #expect(method.routingKey == expected?.type)
            #expect(method.queueName == expected?.queue)
        }
    }

    @Test("type properties parse back, and replies are told apart from requests")
    func typeProperties() {
        for method in RPCMethod.allCases {
            #expect(RPCMethod(typeProperty: method.typeProperty) == method)
            #expect(RPCMethod(replyTypeProperty: method.replyTypeProperty) == method)
            #expect(RPCMethod(typeProperty: method.replyTypeProperty) == nil)
            #expect(RPCMethod(replyTypeProperty: method.typeProperty) == nil)
        }
        #expect(RPCMethod.migrateIdentities.replyTypeProperty == "MigrateIdentitiesReply")
        #expect(RPCMethod(typeProperty: "migrateidentities") == nil)
        #expect(RPCMethod(typeProperty: "") == nil)
        #expect(RPCMethod(replyTypeProperty: "Reply") == nil)
    }

    @Test("each method decodes the request and reply types of the service definition")
    func messageTypes() {
        let expected: [RPCMethod: (String, String)] = [
            .expandProject: ("jsm.migration.v1.ProjectScope", "jsm.migration.v1.ProjectResult"),
            .migrateIdentities: ("jsm.migration.v1.IdentityBatch", "jsm.migration.v1.BatchResult"),
            .migrateGroups: ("jsm.migration.v1.GroupBatch", "jsm.migration.v1.GroupBatchResult"),
            .migrateMemberships: ("jsm.migration.v1.MembershipBatch", "jsm.migration.v1.MembershipBatchResult"),
        ]
        for method in RPCMethod.allCases {
            #expect(method.requestMessageType.protoMessageName == expected[method]?.0)
            #expect(method.replyMessageType.protoMessageName == expected[method]?.1)
        }
    }

    @Test("exchanges, queues, headers and properties carry the documented names")
    func constants() {
        #expect(MigrationTopology.workExchange == "jsm.work")
        #expect(MigrationTopology.resultsQueue == "jsm.results")
        #expect(MigrationTopology.retryExchange == "jsm.retry")
        #expect(MigrationTopology.parkedExchange == "jsm.parked")
        #expect(MigrationTopology.parkedQueue == "jsm.parked")
        #expect(MigrationTopology.defaultExchange == "")
        #expect(HeaderName.schemaVersion == "x-schema-version")
        #expect(HeaderName.migrationID == "x-migration-id")
        #expect(HeaderName.attempt == "x-attempt")
        #expect(HeaderName.parkReason == "x-park-reason")
        #expect(HeaderName.parkError == "x-park-error")
        #expect(WireFormat.contentType == "application/x-protobuf")
        #expect(WireFormat.appID == "jsm-migrate")
        #expect(WireFormat.persistentDeliveryMode == 2)
        #expect(
            ParkReason.allCases.map(\.rawValue) == [
                "undecodable", "unknown-method", "unsupported-schema-version", "invalid-message",
                "retries-exhausted",
            ])
    }

    @Test("the standard retry tiers are jsm.retry.5s, 30s and 5m")
    func retryTiers() {
        #expect(RetryTier.standard.map(\.queueName) == ["jsm.retry.5s", "jsm.retry.30s", "jsm.retry.5m"])
        #expect(RetryTier.standard.map(\.milliseconds) == [5000, 30_000, 300_000])
        #expect(RetryTier.standard(forAttempt: 1) == nil)
        #expect(RetryTier.standard(forAttempt: 2)?.queueName == "jsm.retry.5s")
        #expect(RetryTier.standard(forAttempt: 3)?.queueName == "jsm.retry.30s")
        #expect(RetryTier.standard(forAttempt: 4)?.queueName == "jsm.retry.5m")
        #expect(RetryTier.standard(forAttempt: 40)?.queueName == "jsm.retry.5m")
        #expect(RetryTier(delay: .seconds(3600)).label == "1h")
        #expect(RetryTier(delay: .seconds(90)).label == "90s")
        #expect(RetryTier(delay: .milliseconds(250)).label == "250ms")
    }

    @Test("jitter shortens a retry by at most a fifth of its delay, never lengthens it")
    func retryJitter() {
        let tier = RetryTier(delay: .seconds(30))
        #expect(tier.expiration(unitRandom: 0) == "30000")
        #expect(tier.expiration(unitRandom: 1) == "24000")
        #expect(tier.expiration(unitRandom: 0.5) == "27000")
        #expect(tier.expiration(unitRandom: -3) == "30000")
        #expect(tier.expiration(unitRandom: 7) == "24000")
    }

    @Test("only schema major versions 1 through the current one are handled")
    func schemaVersions() {
        #expect(SchemaVersion.current == 1)
        #expect(SchemaVersion.isSupported(0) == false)
        #expect(SchemaVersion.isSupported(-1) == false)
        #expect(SchemaVersion.isSupported(1))
        #expect(SchemaVersion.isSupported(Int64(SchemaVersion.current) + 1) == false)
        let header = JSMMessageHeader(migrationID: "m-1", batchID: "b-1")
        #expect(header.schemaVersion == SchemaVersion.current)
        #expect(header.migrationID == "m-1")
        #expect(header.batchID == "b-1")
    }
}
