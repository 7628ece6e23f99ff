import AsyncHTTPClient
import Foundation
import NIOCore

/// One queue's counts as the RabbitMQ management API reports them (its statistics are emitted
/// every few seconds, so they may lag a passive declare by that much).
public struct ManagementQueueCounts: Sendable, Hashable {
    /// Messages ready for delivery.
    public let ready: UInt32
    /// Messages delivered to consumers and not yet acknowledged: only this API knows them.
    public let unacked: UInt32
    /// Consumers attached.
    public let consumers: UInt32
}

/// The RabbitMQ management HTTP API, read-only: what `status` needs beyond a passive declare.
///
/// It logs in with the broker user's credentials (a user tagged `monitoring` is enough); they go
/// in an Authorization header only, never in a URL or a message.
public struct ManagementAPI: Sendable {
    /// The API's base URL, e.g. `http://127.0.0.1:15672`.
    public let baseURL: String
    let user: String
    let password: String

    /// An API at `baseURL` (an `http://` or `https://` URL without credentials) for `user`.
    public init(baseURL: String, user: String, password: String) throws(PipelineError) {
        guard let components = URLComponents(string: baseURL), ["http", "https"].contains(components.scheme ?? ""),
            components.host?.isEmpty == false
        else {
            throw PipelineError(.invalidOptions, "the management API URL '\(baseURL)' is not an http(s) URL")
        }
        guard components.password == nil, components.user == nil else {
            throw PipelineError(
                .invalidOptions,
                "the management API URL must not contain credentials (the broker user's are used)")
        }
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.user = user
        self.password = password
    }

    /// Every queue of `vhost` by name, within `timeout` (status must answer fast, so a slow API is
    /// reported rather than waited for).
    public func queues(vhost: String, timeout: Duration = .milliseconds(800)) async throws -> [String:
        ManagementQueueCounts]
    {
        let encodedVhost = vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        var request = HTTPClientRequest(
            url: "\(baseURL)/api/queues/\(encodedVhost)?columns=name,messages_ready,messages_unacknowledged,consumers")
        request.headers.add(
            name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        let milliseconds = timeout.components.seconds * 1_000 + timeout.components.attoseconds / 1_000_000_000_000_000
        let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(milliseconds))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status.code == 200 else {
            throw PipelineError(
                .invalidState,
                "the management API at \(baseURL) answered \(response.status.code) for the queues of vhost '\(vhost)'")
        }
        struct Queue: Decodable {
            let name: String
            // Absent until the broker has emitted the queue's first statistics.
            let messagesReady: UInt32?
            let messagesUnacknowledged: UInt32?
            let consumers: UInt32?
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let queues = try decoder.decode([Queue].self, from: Data(body.readableBytesView))
        return Dictionary(
            queues.map {
                (
                    $0.name,
                    ManagementQueueCounts(
                        ready: $0.messagesReady ?? 0, unacked: $0.messagesUnacknowledged ?? 0,
                        consumers: $0.consumers ?? 0)
                )
            }, uniquingKeysWith: { first, _ in first })
    }
}
