import Foundation

/// How to reach and talk to a RabbitMQ broker.
///
/// Built from an `amqp://` or `amqps://` URL so operators configure one string (usually from an
/// environment variable or a file), with the tuning knobs as documented properties.
public struct AMQPConfiguration: Sendable {
    /// TLS settings for `amqps://`.
    public struct TLS: Sendable, Equatable {
        /// PEM file of the certificate authorities trusted to sign the broker's certificate.
        public var caCertificateFile: String?
        /// Client certificate and key, for brokers that require mutual TLS.
        public var clientCertificateFile: String?
        /// Private key matching ``clientCertificateFile``.
        public var clientKeyFile: String?
        /// Verify the broker's certificate chain. Only tests should ever turn this off.
        public var verifyPeer: Bool = true
        /// Verify that the certificate names the host we dialled.
        public var verifyHostname: Bool = true

        /// Creates TLS settings that verify the broker against the given CA file.
        public init(caCertificateFile: String? = nil, verifyPeer: Bool = true, verifyHostname: Bool = true) {
            self.caCertificateFile = caCertificateFile
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
        }
    }

    /// Broker host name or address.
    public var host: String
    /// Broker port (5672 for AMQP, 5671 for AMQPS by default).
    public var port: Int
    /// The virtual host.
    public var virtualHost: String
    /// User name.
    public var user: String
    /// Password; never logged, never part of ``redactedURL``.
    public var password: String
    /// TLS settings; `nil` means plain TCP.
    public var tls: TLS?
    /// Heartbeat interval proposed to the broker; a silent peer is declared dead after twice this.
    public var heartbeat: Duration = .seconds(30)
    /// Limit for the TCP connect, the TLS handshake and the login together.
    public var connectTimeout: Duration = .seconds(10)
    /// Limit for one synchronous broker operation (declare, qos, consume).
    public var operationTimeout: Duration = .seconds(30)
    /// Largest frame size proposed to the broker.
    public var frameMax: Int = 131_072
    /// Most published messages awaiting a confirm at once; publishing pauses when it is reached.
    public var maxUnconfirmedPublishes: Int = 1_000
    /// After a lost connection: first wait before reconnecting; doubles with jitter each try.
    public var reconnectInitialDelay: Duration = .milliseconds(100)
    /// Longest wait between two reconnection attempts.
    public var reconnectMaxDelay: Duration = .seconds(5)
    /// How long to keep trying to reconnect before failing every pending operation; `nil` disables reconnection.
    public var reconnectGiveUpAfter: Duration? = .seconds(300)
    /// Client-provided connection name shown in the management UI and `rabbitmqctl list_connections`.
    public var connectionName: String = "jsm-migrate"

    /// Creates a configuration from its parts.
    public init(
        host: String = "127.0.0.1", port: Int? = nil, virtualHost: String = "/", user: String = "guest",
        password: String = "guest", tls: TLS? = nil
    ) {
        self.host = host
        self.port = port ?? (tls == nil ? 5672 : 5671)
        self.virtualHost = virtualHost
        self.user = user
        self.password = password
        self.tls = tls
    }

    /// Parses `amqp://user:password@host:port/vhost` or `amqps://...`, as RabbitMQ documents its URI spec.
    ///
    /// The vhost is the percent-decoded path (`/%2f` is the default vhost `/`; an empty path is `/` too).
    /// For `amqps`, the query may carry `cacertfile`, `certfile`, `keyfile` and `verify`
    /// (`verify_peer`, the default, or `verify_none`), named as in RabbitMQ's URI query parameters.
    public init(url: String) throws(AMQPError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(.invalidConfiguration, "not a URL: \(Self.redact(url))")
        }
        guard scheme == "amqp" || scheme == "amqps" else {
            throw AMQPError(
                .invalidConfiguration, "URL scheme must be amqp or amqps, not '\(scheme)' in \(Self.redact(url))")
        }
        guard let host = components.host, !host.isEmpty else {
            throw AMQPError(.invalidConfiguration, "URL has no host: \(Self.redact(url))")
        }
        var tls: TLS? = nil
        if scheme == "amqps" {
            var settings = TLS()
            for item in components.queryItems ?? [] {
                switch item.name {
                case "cacertfile": settings.caCertificateFile = item.value
                case "certfile": settings.clientCertificateFile = item.value
                case "keyfile": settings.clientKeyFile = item.value
                case "verify":
                    switch item.value {
                    case "verify_peer": settings.verifyPeer = true
                    case "verify_none":
                        settings.verifyPeer = false
                        settings.verifyHostname = false
                    default:
                        throw AMQPError(
                            .invalidConfiguration,
                            "URL query verify must be verify_peer or verify_none, not '\(item.value ?? "")'")
                    }
                case "server_name_indication", "heartbeat", "connection_timeout": break
                default:
                    throw AMQPError(
                        .invalidConfiguration, "unknown URL query parameter '\(item.name)' in \(Self.redact(url))")
                }
            }
            tls = settings
        }
        let path = components.percentEncodedPath
        var vhost = "/"
        if path.count > 1 {
            let encoded = String(path.dropFirst())
            guard !encoded.contains("/"), let decoded = encoded.removingPercentEncoding else {
                throw AMQPError(
                    .invalidConfiguration, "URL path must be one percent-encoded vhost: \(Self.redact(url))")
            }
            vhost = decoded
        }
        self.init(
            host: host, port: components.port, virtualHost: vhost,
            user: components.user?.removingPercentEncoding ?? "guest",
            password: components.password?.removingPercentEncoding ?? "guest", tls: tls)
    }

    /// The URL with the password replaced, safe for logs and error messages.
    public var redactedURL: String {
        let scheme = tls == nil ? "amqp" : "amqps"
        let vhost = virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? virtualHost
        return "\(scheme)://\(user):***@\(host):\(port)/\(vhost)"
    }

    /// Replaces the password in an arbitrary URL-ish string, for messages about unparsable URLs.
    static func redact(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let schemeEnd = url.range(of: "://") else { return url }
        let userInfo = url[schemeEnd.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
