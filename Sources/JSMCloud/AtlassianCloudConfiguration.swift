/// Where and how the Atlassian Cloud REST adapter talks to a site.
///
/// The API token is held here only to build the `Authorization` header: `description` never prints it.
public struct AtlassianCloudConfiguration: Sendable, CustomStringConvertible {
    /// The site's base URL, e.g. `https://example.atlassian.net` or `http://127.0.0.1:8080`.
    public var baseURL: String
    /// The email of the account the API token belongs to (the user half of basic auth).
    public var userEmail: String
    /// The API token (the password half of basic auth).
    public var apiToken: String
    /// The most requests in flight to the site at once: the connection pool's size, so a fleet of
    /// workers stays within what the site tolerates and connections are reused.
    public var maxConcurrentRequests: Int = 64
    /// How long to wait for a TCP connection.
    public var connectTimeout: Duration = .seconds(5)
    /// How long one request may take, from sending to the last byte of the answer.
    public var requestTimeout: Duration = .seconds(30)
    /// How 429 and 503 answers are waited out.
    public var retry: ThrottleRetryPolicy = ThrottleRetryPolicy()
    /// The largest answer body read; anything larger is an unexpected response.
    public var maxResponseBytes: Int = 1 << 20
    /// A PEM file of the certificate authorities to trust for an https site instead of the
    /// system's (a TLS-inspecting corporate proxy's CA, say); `nil` for the system's.
    public var caCertificateFile: String?

    /// Describes a site; the other settings keep their defaults until changed.
    public init(baseURL: String, userEmail: String, apiToken: String) {
        var trimmed = baseURL
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.baseURL = trimmed
        self.userEmail = userEmail
        self.apiToken = apiToken
    }

    /// The settings without the token or the user's email.
    public var description: String {
        "AtlassianCloudConfiguration(baseURL: \(baseURL), maxConcurrentRequests: \(maxConcurrentRequests), "
            + "connectTimeout: \(connectTimeout), requestTimeout: \(requestTimeout), retry: \(retry)"
            + (caCertificateFile.map { ", caCertificateFile: \($0)" } ?? "") + ")"
    }
}

/// How the adapter waits out rate limiting (429) and unavailability (503).
///
/// Atlassian asks clients to wait at least `Retry-After` and back off exponentially with jitter;
/// such answers are part of normal operation at scale, so they are counted apart and never as
/// failures. The wait is bounded in attempts and in total time so a worker never hangs forever.
public struct ThrottleRetryPolicy: Sendable, CustomStringConvertible {
    /// The most attempts of one request, the first included.
    public var maxAttempts: Int = 20
    /// The most time spent waiting for one request, across its attempts.
    public var maxTotalWait: Duration = .seconds(300)
    /// The backoff after the first throttled answer, before jitter.
    public var initialBackoff: Duration = .milliseconds(200)
    /// The largest backoff, before jitter.
    public var maxBackoff: Duration = .seconds(30)

    /// The default policy.
    public init() {}

    /// How long to wait after the `attempt`-th throttled answer (1-based): at least `retryAfter`,
    /// and at least a jittered exponential backoff, plus a small random spread so clients told the
    /// same `Retry-After` do not all come back at the same instant.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration?) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let uncapped = initialBackoff * (1 << exponent)
        let backoff = min(uncapped, maxBackoff)
        let jittered = backoff * Double.random(in: 0.5...1.0)
        let floor = max(retryAfter ?? .zero, jittered)
        let spread = floor * Double.random(in: 0..<0.1)
        return floor + spread
    }

    /// The settings, for logs.
    public var description: String {
        "ThrottleRetryPolicy(maxAttempts: \(maxAttempts), maxTotalWait: \(maxTotalWait), "
            + "initialBackoff: \(initialBackoff), maxBackoff: \(maxBackoff))"
    }
}
