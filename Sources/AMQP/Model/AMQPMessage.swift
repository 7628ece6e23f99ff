/// A value in an AMQP field table (message headers, queue arguments).
///
/// Covers the types RabbitMQ sends and accepts, so a header such as `x-death` (an array of
/// tables) survives a round trip through the broker intact.
public indirect enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    /// AMQP decimal: `value / 10^decimals`.
    case decimal(decimals: UInt8, value: UInt32)
    case string(String)
    case bytes([UInt8])
    /// Seconds since the Unix epoch.
    case timestamp(UInt64)
    case table(AMQPTable)
    case array([AMQPFieldValue])
    case void

    /// The value as an integer, whatever width the broker chose to encode it with.
    public var intValue: Int64? {
        switch self {
        case .int8(let v): return Int64(v)
        case .uint8(let v): return Int64(v)
        case .int16(let v): return Int64(v)
        case .uint16(let v): return Int64(v)
        case .int32(let v): return Int64(v)
        case .uint32(let v): return Int64(v)
        case .int64(let v): return v
        case .uint64(let v): return v <= UInt64(Int64.max) ? Int64(v) : nil
        case .timestamp(let v): return v <= UInt64(Int64.max) ? Int64(v) : nil
        default: return nil
        }
    }

    /// The value as text, when it is a string (or UTF-8 bytes).
    public var stringValue: String? {
        switch self {
        case .string(let s): return s
        case .bytes(let b): return String(validating: b, as: UTF8.self)
        default: return nil
        }
    }
}

/// An AMQP field table. Keys are unique; the broker does not promise an order.
public typealias AMQPTable = [String: AMQPFieldValue]

/// The basic-class content properties of a message, as AMQP 0-9-1 defines them.
///
/// All optional: absent properties are not sent. The contracts of this project use `type` for the
/// RPC method, `correlationId` and `replyTo` for replies and `messageId` for de-duplication.
public struct AMQPProperties: Sendable, Hashable {
    /// MIME type of the body.
    public var contentType: String?
    /// Encoding of the body, such as `gzip`.
    public var contentEncoding: String?
    /// Application headers.
    public var headers: AMQPTable = [:]
    /// `true` for delivery mode 2: the broker writes the message to disk.
    public var persistent: Bool?
    /// Priority 0-9, for priority queues.
    public var priority: UInt8?
    /// Ties a reply to its request.
    public var correlationId: String?
    /// Queue the reply should be sent to.
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string (AMQP's own odd choice).
    public var expiration: String?
    /// Unique id of this message; the publisher uses it to match returned messages.
    public var messageId: String?
    /// Seconds since the Unix epoch.
    public var timestamp: UInt64?
    /// Message type name; the RPC method in this project.
    public var type: String?
    /// Validated by the broker against the connection's user when set.
    public var userId: String?
    /// The publishing application.
    public var appId: String?

    /// Creates properties; everything defaults to absent.
    public init(
        contentType: String? = nil, headers: AMQPTable = [:], persistent: Bool? = nil,
        correlationId: String? = nil, replyTo: String? = nil, expiration: String? = nil,
        messageId: String? = nil, timestamp: UInt64? = nil, type: String? = nil, appId: String? = nil
    ) {
        self.contentType = contentType
        self.headers = headers
        self.persistent = persistent
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageId = messageId
        self.timestamp = timestamp
        self.type = type
        self.appId = appId
    }
}

/// A message to publish.
public struct OutboundMessage: Sendable {
    /// Exchange to publish to; `""` is the default exchange, which routes by queue name.
    public var exchange: String
    /// Routing key.
    public var routingKey: String
    /// Ask the broker to return the message when no queue takes it, instead of dropping it.
    public var mandatory: Bool
    /// Properties and headers.
    public var properties: AMQPProperties
    /// The payload.
    public var body: [UInt8]

    /// Creates a message; persistent and mandatory by default, because losing one silently is never wanted here.
    public init(
        exchange: String = "", routingKey: String, body: [UInt8], properties: AMQPProperties = AMQPProperties(),
        mandatory: Bool = true
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.mandatory = mandatory
        self.properties = properties
        if self.properties.persistent == nil { self.properties.persistent = true }
    }
}

/// A message delivered to a consumer, to be settled exactly once with ack, nack or reject.
public struct AMQPDelivery: Sendable {
    /// The payload.
    public var body: [UInt8]
    /// Properties and headers as published (plus what the broker added, such as `x-death`).
    public var properties: AMQPProperties
    /// The exchange it was published to.
    public var exchange: String
    /// The routing key it was published with.
    public var routingKey: String
    /// Whether the broker delivered it before (to this or another consumer) without an ack.
    public var redelivered: Bool
    /// The channel-scoped tag; meaningful only together with the connection generation.
    public var deliveryTag: UInt64
    let settlement: DeliverySettlement

    /// Tells the broker the message is handled and can be forgotten.
    public func ack() { settlement.settle(deliveryTag, .ack) }
    /// Tells the broker the message was not handled: requeue it, or dead-letter it when `requeue` is false.
    public func nack(requeue: Bool) { settlement.settle(deliveryTag, requeue ? .nackRequeue : .nackDiscard) }
    /// Like ``nack(requeue:)``, AMQP's single-message form.
    public func reject(requeue: Bool) { settlement.settle(deliveryTag, requeue ? .rejectRequeue : .rejectDiscard) }
}

/// Sends a delivery's ack, nack or reject back to the thread that owns its connection.
struct DeliverySettlement: Sendable {
    enum Kind: Sendable { case ack, nackRequeue, nackDiscard, rejectRequeue, rejectDiscard }
    let mailbox: Mailbox
    let consumerID: Int
    let generation: Int

    func settle(_ tag: UInt64, _ kind: Kind) {
        mailbox.submitSettlement(Settlement(consumerID: consumerID, generation: generation, tag: tag, kind: kind))
    }
}

/// A settlement waiting to be sent by the connection thread.
struct Settlement: Sendable {
    let consumerID: Int
    let generation: Int
    let tag: UInt64
    let kind: DeliverySettlement.Kind
}
