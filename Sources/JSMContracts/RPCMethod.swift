// The names of the RPC-over-AMQP transport of the worker contracts.
//
// proto-docs/README.md is the specification; this file is its only spelling
// in Swift, so that the producer, the workers, the aggregator, the topology
// declarations and the tests cannot drift apart on a queue or header name.

import SwiftProtobuf

/// A method of the `MigrationWorker` service (proto-docs/migration_worker.proto).
///
/// Each method is one kind of AMQP message: its raw value is the request's `type`
/// property and its routing key on ``MigrationTopology/workExchange``, and it has a quorum
/// queue of its own so that operators can watch and scale each kind separately.
public enum RPCMethod: String, CaseIterable, Sendable {
    /// Phase one: claim the identities one project references (``JSMProjectScope`` -> ``JSMProjectResult``).
    case expandProject = "ExpandProject"
    /// Phase two: create or link the accounts of one batch (``JSMIdentityBatch`` -> ``JSMBatchResult``).
    case migrateIdentities = "MigrateIdentities"
    /// Create or reuse one batch of groups (``JSMGroupBatch`` -> ``JSMGroupBatchResult``).
    case migrateGroups = "MigrateGroups"
    /// Add one batch of group memberships (``JSMMembershipBatch`` -> ``JSMMembershipBatchResult``).
    case migrateMemberships = "MigrateMemberships"

    /// The request's AMQP `type` property: how a consumer knows which message to decode
    /// before touching the body.
    public var typeProperty: String { rawValue }

    /// The reply's AMQP `type` property (`<Method>Reply`). Distinct from the request's so
    /// that a reply routed to a work queue by mistake is parked as an unknown method
    /// instead of being decoded as a request.
    public var replyTypeProperty: String { rawValue + Self.replySuffix }

    /// The routing key a request is published with on ``MigrationTopology/workExchange`` (and keeps
    /// through the retry queues).
    public var routingKey: String { rawValue }

    /// The quorum queue `jsm.work.<Method>` that holds this method's requests.
    public var queueName: String { MigrationTopology.workQueuePrefix + rawValue }

    /// The protobuf message type of the request body, for decoding by `type` property.
    public var requestMessageType: any SwiftProtobuf.Message.Type {
        switch self {
        case .expandProject: JSMProjectScope.self
        case .migrateIdentities: JSMIdentityBatch.self
        case .migrateGroups: JSMGroupBatch.self
        case .migrateMemberships: JSMMembershipBatch.self
        }
    }

    /// The protobuf message type of the reply body.
    public var replyMessageType: any SwiftProtobuf.Message.Type {
        switch self {
        case .expandProject: JSMProjectResult.self
        case .migrateIdentities: JSMBatchResult.self
        case .migrateGroups: JSMGroupBatchResult.self
        case .migrateMemberships: JSMMembershipBatchResult.self
        }
    }

    /// The method a request's `type` property names, or `nil` for an unknown one (which
    /// a worker parks with ``ParkReason/unknownMethod``, never drops).
    public init?(typeProperty: String) {
        self.init(rawValue: typeProperty)
    }

    /// The method a reply's `type` property answers, or `nil` when it is not a reply type.
    public init?(replyTypeProperty: String) {
        guard replyTypeProperty.hasSuffix(Self.replySuffix) else { return nil }
        self.init(rawValue: String(replyTypeProperty.dropLast(Self.replySuffix.count)))
    }

    private static let replySuffix = "Reply"
}

/// Exchange and queue names of the topology (proto-docs/README.md, "Topology").
public enum MigrationTopology {
    /// Direct, durable exchange every request is published to, routed by method name.
    public static let workExchange = "jsm.work"
    /// Prefix of the per-method quorum work queues (`jsm.work.<Method>`).
    public static let workQueuePrefix = "jsm.work."
    /// Quorum queue the aggregator consumes; the `reply_to` of every request.
    public static let resultsQueue = "jsm.results"
    /// The AMQP default exchange, which replies are published to with `reply_to` as key.
    public static let defaultExchange = ""
    /// Direct, durable exchange that delayed retries are published to.
    public static let retryExchange = "jsm.retry"
    /// Prefix of the delayed-retry queues (`jsm.retry.<delay>`, e.g. `jsm.retry.5s`).
    public static let retryQueuePrefix = "jsm.retry."
    /// Fanout, durable exchange for messages that exhausted their retries or cannot be
    /// handled; every queue's dead-letter target, so nothing is silently dropped.
    public static let parkedExchange = "jsm.parked"
    /// Quorum queue, without delivery limit, holding parked messages until an operator
    /// retries or discards them.
    public static let parkedQueue = "jsm.parked"
}

/// One delayed-retry step: a queue whose messages wait ``delay`` and then dead-letter
/// back to ``MigrationTopology/workExchange`` with their routing key (the method name).
public struct RetryTier: Sendable, Hashable {
    /// How long a message waits in this tier at most; the queue's `x-message-ttl`.
    public let delay: Duration

    /// Creates a tier. Delays are whole milliseconds, the resolution of AMQP TTLs.
    public init(delay: Duration) {
        self.delay = delay
    }

    /// The standard growing delays: 5 s, 30 s, 5 min. Attempt n (n >= 2) waits in tier
    /// n - 2, the last tier repeating, until the worker's attempt limit parks the message.
    public static let standard: [RetryTier] = [
        RetryTier(delay: .seconds(5)),
        RetryTier(delay: .seconds(30)),
        RetryTier(delay: .seconds(300)),
    ]

    /// The tier a retry publish of attempt `attempt` waits in: attempt 2 in the first
    /// standard tier, 3 in the second, 4 and later in the last. `nil` for attempt 1 and
    /// below, which are first publishes and never wait.
    public static func standard(forAttempt attempt: Int) -> RetryTier? {
        guard attempt >= 2 else { return nil }
        return standard[min(attempt - 2, standard.count - 1)]
    }

    /// Share of the delay that the per-message `expiration` may take off, so that the
    /// retries of a failed burst do not come back all at once.
    public static let jitterFraction = 0.2

    /// The delay as whole milliseconds (the unit of `x-message-ttl` and `expiration`).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = delay.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The short label in the queue name: `5s`, `30s`, `5m`, `1h`, or `250ms`.
    public var label: String {
        let ms = milliseconds
        if ms > 0, ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms > 0, ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    /// The queue `jsm.retry.<label>`; also its binding key on ``MigrationTopology/retryExchange``,
    /// which a retry selects through the `CC` header while keeping the method as its
    /// routing key.
    public var queueName: String { MigrationTopology.retryQueuePrefix + label }

    /// The per-message `expiration` property (milliseconds, as a decimal string) for a
    /// retry in this tier: the delay shortened by up to ``jitterFraction``.
    ///
    /// - Parameter unitRandom: a value in `0...1` (clamped) from the caller's random
    ///   source, so that tests can pin it.
    public func expiration(unitRandom: Double) -> String {
        let clamped = min(max(unitRandom, 0), 1)
        let shortening = Int64((Double(milliseconds) * Self.jitterFraction * clamped).rounded(.down))
        return String(milliseconds - shortening)
    }
}

/// Names of the application headers every message carries (proto-docs/README.md,
/// "Requests"). They repeat what the body says so a message can be routed, counted or
/// parked without decoding it.
public enum HeaderName {
    /// Major contract version of the body (integer); see ``SchemaVersion``.
    public static let schemaVersion = "x-schema-version"
    /// The migration id (string), for per-migration views of queues and parked messages.
    public static let migrationID = "x-migration-id"
    /// Delivery attempt of this request (integer, 1 = first publish), raised on each retry.
    public static let attempt = "x-attempt"
    /// Why a message was parked (a ``ParkReason`` raw value); set only on parked messages.
    public static let parkReason = "x-park-reason"
    /// The last error of a parked message, one line, no secrets; set only on parked messages.
    public static let parkError = "x-park-error"
    /// RabbitMQ's sender-selected routing header: a retry lists its tier's queue name in it.
    public static let carbonCopy = "CC"
    /// Broker-added dead-letter history. Never copied into a re-publish: a stale history can
    /// make RabbitMQ's dead-letter cycle detection drop the message, and it grows without bound.
    public static let death = "x-death"
}

/// Why a message sits in ``MigrationTopology/parkedQueue``: the value of ``HeaderName/parkReason``.
/// A message dead-lettered by the broker at its `x-delivery-limit` has no such header and
/// is recognised by its `x-death` entry with reason `delivery_limit`.
public enum ParkReason: String, CaseIterable, Sendable {
    /// The body does not decode as the method's request, or `content_type` is not protobuf.
    case undecodable = "undecodable"
    /// The `type` property is missing or names no ``RPCMethod``.
    case unknownMethod = "unknown-method"
    /// `x-schema-version` (or the body's) is 0, missing or a newer major than this build.
    case unsupportedSchemaVersion = "unsupported-schema-version"
    /// The message decodes but breaks the contract (an UNSPECIFIED enum where a value is
    /// required, headers disagreeing with the body, another site's id, ...).
    case invalidMessage = "invalid-message"
    /// A retriable error persisted through every retry tier up to the attempt limit.
    case retriesExhausted = "retries-exhausted"
}

/// Fixed AMQP property values every message of the contract carries.
public enum WireFormat {
    /// `content_type` of every body: binary protobuf.
    public static let contentType = "application/x-protobuf"
    /// `app_id` of every message, so other traffic on a shared broker is recognisable.
    public static let appID = "jsm-migrate"
    /// `delivery_mode` 2: persistent, so a broker restart loses no batch.
    public static let persistentDeliveryMode: UInt8 = 2
}

/// The contract's major version and the rule for accepting a message
/// (proto-docs/README.md, "Versioning").
public enum SchemaVersion {
    /// The major version this build writes and the highest it understands. Additive
    /// changes (new fields, new enum values) never change it.
    public static let current: UInt32 = 1

    /// Whether a message of major version `major` may be handled. 0 means the sender
    /// never set it; a newer major may have changed meanings this build cannot know.
    /// A message that fails this is parked with ``ParkReason/unsupportedSchemaVersion``.
    public static func isSupported(_ major: Int64) -> Bool {
        major >= 1 && major <= Int64(current)
    }
}

extension JSMMessageHeader {
    /// A header for a new message of this build: the current schema version plus the
    /// ids that make the message idempotent.
    public init(migrationID: String, batchID: String) {
        self.init()
        self.schemaVersion = SchemaVersion.current
        self.migrationID = migrationID
        self.batchID = batchID
    }
}
