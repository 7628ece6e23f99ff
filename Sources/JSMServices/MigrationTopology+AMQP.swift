import AMQP
import JSMContracts

/// The broker topology of proto-docs/README.md ("Topology") as declarations.
///
/// Every component declares it at start-up (declarations are idempotent, and the AMQP layer
/// declares them again after a reconnect), so no component depends on another having run first.
public struct MigrationBrokerTopology: Sendable {
    /// Redeliveries of one message (crashed consumers) before the broker parks it.
    public var deliveryLimit: Int
    /// The delayed-retry tiers; each becomes a queue `jsm.retry.<delay>`.
    public var retryTiers: [RetryTier]

    /// Creates the topology with the documented defaults.
    public init(deliveryLimit: Int = 5, retryTiers: [RetryTier] = RetryTier.standard) {
        self.deliveryLimit = deliveryLimit
        self.retryTiers = retryTiers
    }

    /// Confirmed dead-lettering: RabbitMQ only supports at-least-once dead-lettering together with
    /// `reject-publish` overflow, and without it a dead-lettered message could be lost.
    private static let atLeastOnceDeadLettering: AMQPTable = [
        "x-dead-letter-strategy": .string("at-least-once"),
        "x-overflow": .string("reject-publish"),
    ]

    /// A queue that parks what its consumers could not handle after `deliveryLimit` deliveries.
    private func limitedQueue(_ name: String) -> QueueSpec {
        QueueSpec(
            name: name, kind: .quorum, deadLetterExchange: MigrationTopology.parkedExchange,
            deliveryLimit: deliveryLimit, extraArguments: Self.atLeastOnceDeadLettering)
    }

    /// Exchanges, queues and bindings to declare.
    public var declarations: AMQPTopology {
        var topology = AMQPTopology(exchanges: [
            ExchangeSpec(name: MigrationTopology.workExchange, kind: .direct),
            ExchangeSpec(name: MigrationTopology.retryExchange, kind: .direct),
            ExchangeSpec(name: MigrationTopology.parkedExchange, kind: .fanout),
        ])
        for method in RPCMethod.allCases {
            topology.queues.append(limitedQueue(method.queueName))
            topology.bindings.append(
                BindingSpec(
                    queue: method.queueName, exchange: MigrationTopology.workExchange, routingKey: method.routingKey))
        }
        topology.queues.append(limitedQueue(MigrationTopology.resultsQueue))
        for tier in retryTiers {
            topology.queues.append(
                QueueSpec(
                    name: tier.queueName, kind: .quorum, deadLetterExchange: MigrationTopology.workExchange,
                    messageTTLMilliseconds: Int(tier.milliseconds), extraArguments: Self.atLeastOnceDeadLettering))
            topology.bindings.append(
                BindingSpec(
                    queue: tier.queueName, exchange: MigrationTopology.retryExchange, routingKey: tier.queueName))
        }
        topology.queues.append(QueueSpec(name: MigrationTopology.parkedQueue, kind: .quorum))
        topology.bindings.append(
            BindingSpec(
                queue: MigrationTopology.parkedQueue, exchange: MigrationTopology.parkedExchange, routingKey: ""))
        return topology
    }

    /// Every queue name, in the order operators read them: work, results, retries, parked.
    public var queueNames: [String] { declarations.queues.map(\.name) }
}
