import AMQP
import Foundation
import JSMContracts
import SwiftProtobuf

/// How a request or reply travels over AMQP (proto-docs/README.md, "Requests" and "Replies").
public enum RPCEnvelope {
    /// A request for a worker: to `jsm.work` with the method as routing key and `type`.
    public static func request(
        _ method: RPCMethod, header: JSMMessageHeader, body: some SwiftProtobuf.Message,
        replyTo: String = MigrationTopology.resultsQueue, attempt: Int = 1
    ) throws -> OutboundMessage {
        OutboundMessage(
            exchange: MigrationTopology.workExchange, routingKey: method.routingKey,
            body: try body.serializedBytes(),
            properties: properties(
                type: method.typeProperty, header: header, correlationId: header.batchID, replyTo: replyTo,
                attempt: attempt))
    }

    /// The reply to a request, for the queue the request named.
    public static func reply(
        to method: RPCMethod, request: AMQPProperties, header: JSMMessageHeader, body: some SwiftProtobuf.Message,
        attempt: Int
    ) throws -> OutboundMessage? {
        guard let replyTo = request.replyTo, !replyTo.isEmpty else { return nil }
        return OutboundMessage(
            exchange: MigrationTopology.defaultExchange, routingKey: replyTo, body: try body.serializedBytes(),
            properties: properties(
                type: method.replyTypeProperty, header: header, correlationId: request.correlationId ?? header.batchID,
                replyTo: nil, attempt: attempt))
    }

    private static func properties(
        type: String, header: JSMMessageHeader, correlationId: String, replyTo: String?, attempt: Int
    ) -> AMQPProperties {
        AMQPProperties(
            contentType: WireFormat.contentType,
            headers: [
                HeaderName.schemaVersion: .int64(Int64(header.schemaVersion)),
                HeaderName.migrationID: .string(header.migrationID),
                HeaderName.attempt: .int64(Int64(attempt)),
            ],
            persistent: true, correlationId: correlationId, replyTo: replyTo, messageId: UUID().uuidString,
            timestamp: UInt64(Date().timeIntervalSince1970), type: type, appId: WireFormat.appID)
    }

    /// Why a delivery cannot be handled: the message is parked with this reason and detail.
    public struct Unusable: Error, Sendable, CustomStringConvertible {
        /// The `x-park-reason` to park it with.
        public let reason: ParkReason
        /// One line for `x-park-error`.
        public let detail: String
        /// The reason and the detail.
        public var description: String { "\(reason.rawValue): \(detail)" }

        /// Creates the verdict for one delivery.
        public init(reason: ParkReason, detail: String) {
            self.reason = reason
            self.detail = detail
        }
    }

    /// Checks a request delivery against the contract before any work: method, content type, schema version.
    public static func requestMethod(of delivery: AMQPDelivery) throws(Unusable) -> RPCMethod {
        guard let type = delivery.properties.type, let method = RPCMethod(typeProperty: type) else {
            throw Unusable(
                reason: .unknownMethod, detail: "type '\(delivery.properties.type ?? "")' is not a worker method")
        }
        guard delivery.properties.contentType == WireFormat.contentType else {
            throw Unusable(reason: .undecodable, detail: "content type '\(delivery.properties.contentType ?? "")'")
        }
        let version = delivery.properties.headers[HeaderName.schemaVersion]?.intValue ?? 0
        guard SchemaVersion.isSupported(version) else {
            throw Unusable(reason: .unsupportedSchemaVersion, detail: "schema version \(version)")
        }
        return method
    }

    /// Decodes a body, turning a protobuf failure into the `undecodable` park reason.
    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from delivery: AMQPDelivery) throws(Unusable)
        -> M
    {
        do {
            return try M(serializedBytes: delivery.body)
        } catch {
            throw Unusable(reason: .undecodable, detail: "\(M.protoMessageName): \(error)")
        }
    }
}

extension RPCEnvelope {
    /// The message to publish to `jsm.parked` for a delivery that cannot be handled: the original
    /// body and properties, plus the reason, so `jsm-migrate failed` can show and retry it.
    public static func parked(_ delivery: AMQPDelivery, because unusable: Unusable) -> OutboundMessage {
        var properties = delivery.properties
        properties.headers[HeaderName.parkReason] = .string(unusable.reason.rawValue)
        properties.headers[HeaderName.parkError] = .string(String(unusable.detail.prefix(500)))
        properties.persistent = true
        return OutboundMessage(
            exchange: MigrationTopology.parkedExchange, routingKey: delivery.routingKey, body: delivery.body,
            properties: properties)
    }
}
