/// The one error type of the cloud-site port: what went wrong, whether trying again later can help,
/// and where (HTTP status, host and URL path), never with the API token or the query string (which
/// holds email addresses).
///
/// Workers decide from `isRetriable` whether to return a batch to the queue or to park it.
public struct CloudSiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure the port distinguishes.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The kind's stable name, for logs and metrics labels.
        public let name: String
        /// Whether the same request may succeed later without any change.
        public let isRetriable: Bool

        /// The site could not be reached (refused, reset, DNS): a site down for maintenance comes back.
        public static let unreachable = Code(name: "unreachable", isRetriable: true)
        /// The site did not answer in time; the request may or may not have taken effect, and
        /// creation is idempotent, so it is safe to send again.
        public static let timeout = Code(name: "timeout", isRetriable: true)
        /// The site answered 5xx (other than a 503 absorbed by the retry policy).
        public static let serverError = Code(name: "server_error", isRetriable: true)
        /// The site kept answering 429 or 503 beyond the retry policy's bounds.
        public static let throttled = Code(name: "throttled", isRetriable: true)
        /// The site said an account exists (409) but its search did not show it yet.
        public static let conflictWithoutAccount = Code(name: "conflict_without_account", isRetriable: true)
        /// The site refused the credentials (401): the operator must fix the token.
        public static let unauthorized = Code(name: "unauthorized", isRetriable: false)
        /// The credentials lack a permission (403).
        public static let forbidden = Code(name: "forbidden", isRetriable: false)
        /// The site refused the request as invalid (400): sending it again cannot help.
        public static let invalidRequest = Code(name: "invalid_request", isRetriable: false)
        /// The group or account named does not exist (404).
        public static let notFound = Code(name: "not_found", isRetriable: false)
        /// The site answered something the adapter does not understand.
        public static let unexpectedResponse = Code(name: "unexpected_response", isRetriable: false)

        /// The name, as logs print it.
        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// The HTTP status the site answered, when it answered.
    public let status: Int?
    /// The site's host and port, so an operator sees which site failed.
    public let host: String
    /// The HTTP method and URL path of the request, without the query string.
    public let path: String
    /// What the site or the transport said, for the operator.
    public let message: String

    /// Creates an error; the adapter is the usual author.
    public init(code: Code, status: Int? = nil, host: String, path: String, message: String) {
        self.code = code
        self.status = status
        self.host = host
        self.path = path
        self.message = message
    }

    /// Whether returning the work to the queue and trying later can succeed.
    public var isRetriable: Bool { code.isRetriable }

    /// One line for logs: code, status, host, path and message.
    public var description: String {
        let statusText = status.map { " HTTP \($0)" } ?? ""
        let retry = isRetriable ? "retriable" : "not retriable"
        return "cloud site \(host) \(code)\(statusText) on \(path) (\(retry)): \(message)"
    }
}
