import AMQP
import Foundation
import JSMContracts

extension RPCEnvelope {
    /// The delayed retry of a delivery (proto-docs/README.md, "Delayed retries"): the original body
    /// bytes to `jsm.retry` with the method as routing key, `CC` naming the tier queue chosen by the
    /// next attempt, `x-attempt` + 1, a jittered expiration, and the dead-letter history dropped.
    ///
    /// - Parameters:
    ///   - nextAttempt: the attempt the retried message will be (2 or more).
    ///   - unitRandom: a number in 0...1 for the jitter.
    public static func retry(
        _ delivery: AMQPDelivery, method: RPCMethod, nextAttempt: Int, unitRandom: Double
    ) -> OutboundMessage {
        let tier = RetryTier.standard(forAttempt: max(2, nextAttempt)) ?? RetryTier.standard[0]
        var properties = delivery.properties
        var headers = properties.headers
        for name in headers.keys
        where name == HeaderName.death || name == HeaderName.carbonCopy || name.hasPrefix("x-first-death")
            || name.hasPrefix("x-last-death") || name == HeaderName.parkReason || name == HeaderName.parkError
        {
            headers[name] = nil
        }
        headers[HeaderName.attempt] = .int64(Int64(nextAttempt))
        headers[HeaderName.carbonCopy] = .array([.string(tier.queueName)])
        properties.headers = headers
        properties.expiration = tier.expiration(unitRandom: unitRandom)
        properties.messageId = UUID().uuidString
        properties.timestamp = UInt64(Date().timeIntervalSince1970)
        properties.persistent = true
        return OutboundMessage(
            exchange: MigrationTopology.retryExchange, routingKey: method.routingKey, body: delivery.body,
            properties: properties)
    }
}
