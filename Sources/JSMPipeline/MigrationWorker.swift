import AMQP
import JSMCloud
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import JSMSource
import Logging
import SwiftProtobuf

/// How a worker process runs.
public struct WorkerConfiguration: Sendable, Hashable {
    /// Names the worker in replies and logs (host and process by default).
    public var workerId: String
    /// Deliveries handled at once per method.
    public var concurrency: Int
    /// Email groups of one batch resolved at the site at once.
    public var siteConcurrency: Int
    /// Attempts (first delivery included) before a failing message is parked as `retries-exhausted`.
    public var maxAttempts: Int
    /// The site this worker's adapter talks to; a batch for another site is parked (proto-docs),
    /// never sent to the wrong site. `nil` accepts every site (tests of pure processing).
    public var siteId: String?

    /// Creates a configuration with production defaults.
    public init(
        workerId: String, concurrency: Int = 4, siteConcurrency: Int = 32, maxAttempts: Int = 5, siteId: String? = nil
    ) {
        self.workerId = workerId
        self.concurrency = concurrency
        self.siteConcurrency = siteConcurrency
        self.maxAttempts = maxAttempts
        self.siteId = siteId
    }
}

/// What a worker does per method.
struct Processors: Sendable {
    let expander: ProjectExpander
    let identities: IdentityBatchProcessor
    let groups: GroupBatchProcessor
    let memberships: MembershipBatchProcessor
}

/// A stateless worker: consumes every method (`ExpandProject`, `MigrateIdentities`,
/// `MigrateGroups`, `MigrateMemberships`), and per message decodes,
/// applies the rules, calls the site, commits one ledger transaction, replies, then acks. A
/// message it cannot use is parked; a retriable failure goes to a delayed retry queue; nothing
/// is acked before its reply, retry or parked copy is confirmed by the broker.
public struct MigrationWorker: Sendable {
    let ledger: Ledger
    let source: JiraSource
    let site: any CloudSite
    let configuration: WorkerConfiguration
    let logger: Logger

    /// A worker over its ledger, source and site.
    public init(
        ledger: Ledger, source: JiraSource, site: any CloudSite, configuration: WorkerConfiguration,
        logger: Logger = Logger(label: "jsm.worker")
    ) {
        self.ledger = ledger
        self.source = source
        self.site = site
        self.configuration = configuration
        self.logger = logger
    }

    /// Consumes until the task is cancelled or the connection fails for good.
    public func run(connection: AMQPConnection) async throws {
        let classifier = try await source.loadClassifier()
        let expander = ProjectExpander(
            ledger: ledger, source: source, classifier: classifier, workerId: configuration.workerId, logger: logger)
        let processors = Processors(
            expander: expander,
            identities: IdentityBatchProcessor(
                ledger: ledger, site: site, workerId: configuration.workerId,
                siteConcurrency: configuration.siteConcurrency, logger: logger),
            groups: GroupBatchProcessor(
                ledger: ledger, site: site, workerId: configuration.workerId,
                siteConcurrency: configuration.siteConcurrency, logger: logger),
            memberships: MembershipBatchProcessor(
                ledger: ledger, site: site, workerId: configuration.workerId,
                siteConcurrency: configuration.siteConcurrency, logger: logger))
        let prefetch = UInt16(clamping: max(1, configuration.concurrency * 2))
        var subscribed: [AMQPConsumer] = []
        for method in RPCMethod.allCases {
            subscribed.append(try await connection.consume(queue: method.queueName, prefetch: prefetch))
        }
        let consumers = subscribed
        logger.notice("worker consuming", metadata: ["worker": "\(configuration.workerId)"])
        try await ConsumerDrain.run(consumers) { drain in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (method, consumer) in zip(RPCMethod.allCases, consumers) {
                    group.addTask {
                        try await consume(
                            consumer, method: method, drain: drain, connection: connection, processors: processors)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Handles one consumer's deliveries, at most `concurrency` at once. Once a graceful shutdown
    /// has begun, deliveries not yet started go back to their queue, and the in-flight ones finish.
    private func consume(
        _ consumer: AMQPConsumer, method: RPCMethod, drain: ConsumerDrain, connection: AMQPConnection,
        processors: Processors
    ) async throws {
        let limit = max(1, configuration.concurrency)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for try await delivery in consumer {
                // Checked before and after waiting for a free slot: a shutdown may begin meanwhile.
                if !drain.isStopping, running >= limit {
                    try await group.next()
                    running -= 1
                }
                guard !drain.isStopping else {
                    delivery.reject(requeue: true)
                    PipelineMetrics.batch(method, "returned")
                    continue
                }
                running += 1
                group.addTask { await handle(delivery, connection: connection, processors: processors) }
            }
            if running > 0 {
                logger.notice(
                    "worker stopping: finishing in-flight messages",
                    metadata: ["queue": "\(method.queueName)", "in_flight": "\(running)"])
            }
            try await group.waitForAll()
        }
    }

    /// One delivery, from decoding to the ack.
    func handle(_ delivery: AMQPDelivery, connection: AMQPConnection, processors: Processors) async {
        let attempt = Int(delivery.properties.headers[HeaderName.attempt]?.intValue ?? 1)
        let started = ContinuousClock.now
        var method: RPCMethod?
        var header = JSMMessageHeader()
        do {
            let requested = try RPCEnvelope.requestMethod(of: delivery)
            method = requested
            let reply: OutboundMessage?
            switch requested {
            case .expandProject:
                let scope = try RPCEnvelope.decode(JSMProjectScope.self, from: delivery)
                header = scope.header
                try Self.checkHeader(scope.header, delivery)
                let result = try await processors.expander.process(scope, attempt: UInt32(clamping: attempt))
                PipelineMetrics.batch(.expandProject, result.replayed ? "replayed" : "completed")
                reply = try RPCEnvelope.reply(
                    to: requested, request: delivery.properties, header: scope.header, body: result, attempt: attempt)
            case .migrateIdentities:
                reply = try await batchReply(JSMIdentityBatch.self, delivery, requested, attempt, header: &header) {
                    let result = try await processors.identities.process($0, attempt: $1)
                    PipelineMetrics.record(result)
                    return result
                }
            case .migrateGroups:
                reply = try await batchReply(JSMGroupBatch.self, delivery, requested, attempt, header: &header) {
                    let result = try await processors.groups.process($0, attempt: $1)
                    PipelineMetrics.record(result)
                    return result
                }
            case .migrateMemberships:
                reply = try await batchReply(JSMMembershipBatch.self, delivery, requested, attempt, header: &header) {
                    let result = try await processors.memberships.process($0, attempt: $1)
                    PipelineMetrics.record(result)
                    return result
                }
            }
            if let reply { try await connection.publish(reply) }
            delivery.ack()
            PipelineMetrics.duration(requested, since: started)
        } catch {
            if Task.isCancelled || error is CancellationError {
                // The worker is stopping: the message goes back to its queue for another worker.
                delivery.nack(requeue: true)
                if let method { PipelineMetrics.batch(method, "returned") }
            } else if let unusable = error as? RPCEnvelope.Unusable {
                await park(delivery, method: method, header: header, because: unusable, connection: connection)
            } else if Self.isRetriable(error) {
                await retry(
                    delivery, method: method, header: header, attempt: attempt, error: error, connection: connection)
            } else {
                // Neither the message nor a passing outage: the batch needs an operator.
                let unusable = RPCEnvelope.Unusable(reason: .invalidMessage, detail: "\(error)")
                await park(delivery, method: method, header: header, because: unusable, connection: connection)
            }
        }
    }

    /// Whether `error` is an outage that a later attempt may not meet.
    static func isRetriable(_ error: any Error) -> Bool {
        switch error {
        case let error as LedgerError: return error.isRetriable
        case let error as CloudSiteError: return error.code.isRetriable
        case let error as AMQPError: return error.isRetriable
        case is SourceError: return true
        default: return false
        }
    }

    /// The body's header must match the AMQP properties, so that a reply or a park is never filed
    /// under another migration.
    static func checkHeader(_ header: JSMMessageHeader, _ delivery: AMQPDelivery) throws(RPCEnvelope.Unusable) {
        let propertyMigration = delivery.properties.headers[HeaderName.migrationID]?.stringValue
        guard !header.migrationID.isEmpty, !header.batchID.isEmpty,
            propertyMigration == nil || propertyMigration == header.migrationID
        else {
            throw RPCEnvelope.Unusable(
                reason: .invalidMessage,
                detail: "header migration '\(header.migrationID)' batch '\(header.batchID)' does not match the message")
        }
    }

    /// Decodes a batch of any kind, checks its header and target site (noting the header for a
    /// park or retry), processes it and builds the reply.
    private func batchReply<Batch: SiteBatch, Reply: BatchReply>(
        _ type: Batch.Type, _ delivery: AMQPDelivery, _ method: RPCMethod, _ attempt: Int,
        header: inout JSMMessageHeader, _ process: (Batch, UInt32) async throws -> Reply
    ) async throws -> OutboundMessage? {
        let batch = try RPCEnvelope.decode(Batch.self, from: delivery)
        header = batch.header
        try Self.checkHeader(batch.header, delivery)
        try checkSite(batch.targetSiteID, batch.header)
        let result = try await process(batch, UInt32(clamping: attempt))
        return try RPCEnvelope.reply(
            to: method, request: delivery.properties, header: batch.header, body: result, attempt: attempt)
    }

    /// A batch names the site it migrates to; this worker's adapter talks to one site, so a batch
    /// for another one is parked, never sent to the wrong site.
    func checkSite(_ target: String, _ header: JSMMessageHeader) throws(RPCEnvelope.Unusable) {
        guard let siteId = configuration.siteId, !target.isEmpty, target != siteId else { return }
        throw RPCEnvelope.Unusable(
            reason: .invalidMessage,
            detail: "batch \(header.batchID) migrates to site '\(target)', but this worker serves site '\(siteId)'")
    }

    /// Parks the delivery (its copy confirmed on `jsm.parked` before the ack) and counts how it
    /// ended: `parked`, or `returned` when the park failed and the message went back to its queue.
    private func park(
        _ delivery: AMQPDelivery, method: RPCMethod?, header: JSMMessageHeader, because unusable: RPCEnvelope.Unusable,
        connection: AMQPConnection
    ) async {
        logger.error(
            "parking a message",
            metadata: [
                "reason": "\(unusable.reason.rawValue)", "batch": "\(header.batchID)",
                "detail": "\(LogRedaction.text(unusable.detail))",
            ])
        do {
            try await connection.publish(RPCEnvelope.parked(delivery, because: unusable))
            if !header.migrationID.isEmpty, !header.batchID.isEmpty {
                await recordInLedger("park") {
                    try await ledger.parkBatch(
                        migrationId: header.migrationID, batchId: header.batchID, error: unusable.description)
                }
            }
            delivery.ack()
            if let method { PipelineMetrics.batch(method, "parked") }
        } catch {
            logger.error(
                "could not park; the message goes back to its queue",
                metadata: ["error": "\(LogRedaction.text("\(error)"))"])
            delivery.nack(requeue: true)
            if let method { PipelineMetrics.batch(method, "returned") }
        }
    }

    /// Bookkeeping beside a park or a retry: the message itself is already safe on the broker, so a
    /// ledger failure here must not undo that; it is logged for the operator (the parked message or
    /// the retry still carries the batch, and `failed retry` reconciles the ledger's state).
    private func recordInLedger(_ what: String, _ write: () async throws -> some Sendable) async {
        do {
            _ = try await write()
        } catch {
            logger.error(
                "could not record a \(what) in the ledger", metadata: ["error": "\(LogRedaction.text("\(error)"))"])
        }
    }

    private func retry(
        _ delivery: AMQPDelivery, method: RPCMethod?, header: JSMMessageHeader, attempt: Int, error: any Error,
        connection: AMQPConnection
    ) async {
        guard let method, attempt < configuration.maxAttempts else {
            await park(
                delivery, method: method, header: header,
                because: RPCEnvelope.Unusable(
                    reason: .retriesExhausted, detail: "attempt \(attempt) of \(configuration.maxAttempts): \(error)"),
                connection: connection)
            return
        }
        logger.warning(
            "retrying later",
            metadata: [
                "batch": "\(header.batchID)", "attempt": "\(attempt)", "error": "\(LogRedaction.text("\(error)"))",
            ])
        do {
            if !header.batchID.isEmpty, method != .expandProject {
                await recordInLedger("failed attempt") {
                    try await ledger.recordFailedAttempt(
                        migrationId: header.migrationID, batchId: header.batchID, error: "\(error)")
                }
            }
            try await connection.publish(
                RPCEnvelope.retry(
                    delivery, method: method, nextAttempt: attempt + 1, unitRandom: Double.random(in: 0...1)))
            delivery.ack()
            PipelineMetrics.batch(method, "retried")
        } catch {
            logger.error(
                "could not schedule the retry; the message goes back",
                metadata: ["error": "\(LogRedaction.text("\(error)"))"])
            delivery.nack(requeue: true)
            PipelineMetrics.batch(method, "returned")
        }
    }
}
