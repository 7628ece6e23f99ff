/// The one error type of the AMQP module.
///
/// Operators read these in one line, so every error names its cause (which host, which queue,
/// what the broker said) and callers decide whether to retry through ``isRetriable``.
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarse enough to switch on.
    public enum Code: String, Sendable, Equatable {
        /// The URL or another configuration value cannot be used.
        case invalidConfiguration
        /// The broker could not be reached (name resolution, refused or timed-out TCP connect).
        case unreachable
        /// The broker refused the user name or password.
        case authenticationFailed
        /// The TLS handshake failed, or the broker's certificate was not trusted.
        case tlsFailed
        /// The broker closed the connection, or the socket broke.
        case connectionLost
        /// The broker closed a channel because of an operation on it (e.g. 406 PRECONDITION_FAILED).
        case channelClosed
        /// No answer in time.
        case timeout
        /// A mandatory message could not be routed to any queue and came back.
        case unroutable
        /// The broker refused to take responsibility for a published message.
        case publishNacked
        /// The connection was closed by this process, or gave up reconnecting.
        case closed
        /// librabbitmq reported a failure that fits no other code.
        case library
    }

    /// What went wrong.
    public var code: Code
    /// A sentence naming the cause; never contains a password.
    public var message: String
    /// The AMQP reply code the broker sent (e.g. 404, 406, 403), when it sent one.
    public var replyCode: UInt16?
    /// The broker's reply text, when it sent one.
    public var replyText: String?
    /// Where in this code base the error was raised, for bug reports.
    public var location: String

    /// Creates an error; the source location is captured automatically.
    public init(
        _ code: Code, _ message: String, replyCode: UInt16? = nil, replyText: String? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.replyText = replyText
        self.location = "\(file):\(line)"
    }

    /// Whether trying the same operation again later can succeed without anyone changing anything.
    public var isRetriable: Bool {
        switch code {
        case .unreachable, .connectionLost, .timeout, .publishNacked: return true
        case .channelClosed:
            // 404 (a queue not declared yet) and resource errors may pass; 406 and 403 will not.
            return replyCode != 406 && replyCode != 403 && replyCode != 530
        case .invalidConfiguration, .authenticationFailed, .tlsFailed, .unroutable, .closed, .library:
            return false
        }
    }

    /// One line: the code, the message and what the broker said.
    public var description: String {
        var line = "AMQP \(code.rawValue): \(message)"
        if let replyCode {
            line += " (broker replied \(replyCode) \(replyText ?? ""))"
        }
        return line
    }
}
