/// An exchange to declare.
public struct ExchangeSpec: Sendable, Hashable {
    /// AMQP exchange types.
    public enum Kind: String, Sendable { case direct, fanout, topic, headers }
    /// Exchange name.
    public var name: String
    /// Routing behaviour.
    public var kind: Kind
    /// Survives a broker restart.
    public var durable: Bool
    /// Extra arguments.
    public var arguments: AMQPTable

    /// Creates a durable exchange description.
    public init(name: String, kind: Kind, durable: Bool = true, arguments: AMQPTable = [:]) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.arguments = arguments
    }
}

/// A queue to declare, with the arguments RabbitMQ reads from `x-` keys spelled as typed properties.
public struct QueueSpec: Sendable, Hashable {
    /// RabbitMQ queue types.
    public enum Kind: String, Sendable { case classic, quorum }
    /// Queue name.
    public var name: String
    /// Quorum queues are replicated and support delivery limits; the project uses them for work.
    public var kind: Kind
    /// Survives a broker restart (quorum queues always are).
    public var durable: Bool
    /// Where rejected, expired or over-delivered messages go (`x-dead-letter-exchange`).
    public var deadLetterExchange: String?
    /// Routing key for dead-lettered messages; `nil` keeps the original one.
    public var deadLetterRoutingKey: String?
    /// Quorum queues: redeliveries before the message is dead-lettered (`x-delivery-limit`).
    public var deliveryLimit: Int?
    /// Milliseconds a message may wait in the queue (`x-message-ttl`).
    public var messageTTLMilliseconds: Int?
    /// Any further arguments, passed through as they are.
    public var extraArguments: AMQPTable

    /// Creates a durable queue description.
    public init(
        name: String, kind: Kind = .quorum, durable: Bool = true, deadLetterExchange: String? = nil,
        deadLetterRoutingKey: String? = nil, deliveryLimit: Int? = nil, messageTTLMilliseconds: Int? = nil,
        extraArguments: AMQPTable = [:]
    ) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.deadLetterExchange = deadLetterExchange
        self.deadLetterRoutingKey = deadLetterRoutingKey
        self.deliveryLimit = deliveryLimit
        self.messageTTLMilliseconds = messageTTLMilliseconds
        self.extraArguments = extraArguments
    }

    /// The declare arguments as the broker expects them.
    public var arguments: AMQPTable {
        var args = extraArguments
        args["x-queue-type"] = .string(kind.rawValue)
        if let deadLetterExchange { args["x-dead-letter-exchange"] = .string(deadLetterExchange) }
        if let deadLetterRoutingKey { args["x-dead-letter-routing-key"] = .string(deadLetterRoutingKey) }
        if let deliveryLimit { args["x-delivery-limit"] = .int64(Int64(deliveryLimit)) }
        if let messageTTLMilliseconds { args["x-message-ttl"] = .int64(Int64(messageTTLMilliseconds)) }
        return args
    }
}

/// A binding of a queue to an exchange.
public struct BindingSpec: Sendable, Hashable {
    /// The queue that receives.
    public var queue: String
    /// The exchange that routes.
    public var exchange: String
    /// The routing key (ignored by fanout exchanges).
    public var routingKey: String

    /// Creates a binding description.
    public init(queue: String, exchange: String, routingKey: String) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
    }
}

/// Exchanges, queues and bindings declared together, and declared again after every reconnect.
public struct AMQPTopology: Sendable, Hashable {
    /// Exchanges, declared first.
    public var exchanges: [ExchangeSpec]
    /// Queues, declared second.
    public var queues: [QueueSpec]
    /// Bindings, declared last.
    public var bindings: [BindingSpec]

    /// Creates a topology.
    public init(exchanges: [ExchangeSpec] = [], queues: [QueueSpec] = [], bindings: [BindingSpec] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }
}

/// What a passive declare tells about a queue.
public struct QueueCounts: Sendable, Hashable {
    /// Messages ready for delivery (not those delivered and awaiting an ack).
    public var ready: UInt32
    /// Consumers attached.
    public var consumers: UInt32

    /// Creates counts.
    public init(ready: UInt32, consumers: UInt32) {
        self.ready = ready
        self.consumers = consumers
    }
}
