import Hummingbird
import Logging
import Synchronization

/// Refuses every request without the site's API token, as Atlassian does (401).
///
/// Basic auth `email:api_token`, as Atlassian Cloud takes it; any email is accepted, only the
/// token is checked (in constant time). The token is never logged.
struct TokenAuthenticationMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    init(token: String) { self.token = Array(token.utf8) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let header = request.headers[.authorization], presentsToken(header) else {
            return SiteResponse.platformError(
                .unauthorized, "Client must be authenticated to access this resource.",
                headers: [.wwwAuthenticate: "Basic realm=\"jsm-migrate cloud-site\""])
        }
        return try await next(request, context)
    }

    /// Whether a `Basic` authorization header carries the token as its password.
    ///
    /// Read on the header's bytes (no Foundation trimming or `Data`): this runs on every request.
    private func presentsToken(_ header: String) -> Bool {
        var header = header
        return header.withUTF8 { bytes in
            guard let presented = BasicCredentials.password(inHeader: bytes) else { return false }
            guard presented.count == token.count else { return false }
            var difference: UInt8 = 0
            for index in 0..<presented.count { difference |= presented[index] ^ token[index] }
            return difference == 0
        }
    }
}

/// Reads basic-auth credentials from an `Authorization` header's bytes.
enum BasicCredentials {
    /// The longest header read; anything longer is refused rather than decoded.
    static let maxHeaderBytes = 8_192

    /// The password (the part after the first `:`) of `Basic <base64(user:password)>`, the scheme
    /// name in any case and spaces around the credentials allowed; `nil` when the header is not that.
    static func password(inHeader bytes: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let scheme: StaticString = "basic "
        guard bytes.count > scheme.utf8CodeUnitCount, bytes.count <= maxHeaderBytes else { return nil }
        let schemeMatches = scheme.withUTF8Buffer { expected in
            (0..<expected.count).allSatisfy { bytes[$0] | 0x20 == expected[$0] }
        }
        guard schemeMatches else { return nil }
        var start = scheme.utf8CodeUnitCount
        var end = bytes.count
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        guard let decoded = base64Decoded(UnsafeBufferPointer(rebasing: bytes[start..<end])),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        return Array(decoded[(colon + 1)...])
    }

    /// Standard base64 with padding (RFC 4648 section 4), as `Data(base64Encoded:)` reads it:
    /// the length a multiple of 4, `=` only at the end; `nil` for anything else.
    static func base64Decoded(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard !text.isEmpty, text.count % 4 == 0 else { return nil }
        var padding = 0
        if text[text.count - 1] == UInt8(ascii: "=") { padding += 1 }
        if text[text.count - 2] == UInt8(ascii: "=") { padding += 1 }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        for quad in stride(from: 0, to: text.count, by: 4) {
            let isLast = quad + 4 == text.count
            var value: UInt32 = 0
            for offset in 0..<4 {
                let character = text[quad + offset]
                let sextet: UInt8
                if character == UInt8(ascii: "="), isLast, offset >= 4 - padding {
                    sextet = 0
                } else {
                    guard let decoded = sextetValue(character) else { return nil }
                    sextet = decoded
                }
                value = value << 6 | UInt32(sextet)
            }
            output.append(UInt8(truncatingIfNeeded: value >> 16))
            if !isLast || padding < 2 { output.append(UInt8(truncatingIfNeeded: value >> 8)) }
            if !isLast || padding < 1 { output.append(UInt8(truncatingIfNeeded: value)) }
        }
        return output
    }

    private static func sextetValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}

/// Answers 429 with `Retry-After` (whole seconds, as Atlassian sends) once the site's rate is exceeded.
struct RateLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limiter: RateLimiter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let wait = limiter.admit() else { return try await next(request, context) }
        let seconds = max(
            1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
        return SiteResponse.platformError(
            .tooManyRequests, "Rate limit exceeded.",
            headers: [
                .retryAfter: String(seconds),
                HTTPFields.Element.Name("X-RateLimit-Limit")!: String(Int(limiter.rate)),
                HTTPFields.Element.Name("X-RateLimit-Remaining")!: "0",
                HTTPFields.Element.Name("RateLimit-Reason")!: "jira-quota-global-based",
            ])
    }
}

/// Turns failures behind the endpoints into Atlassian-shaped answers: a full or stopping writer is
/// 503 with `Retry-After`, a store failure is 500; HTTP errors (such as 413) pass through.
struct SiteErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let problem as BodyProblem {
            return SiteResponse.platformError(.badRequest, problem.message)
        } catch let error as AccountWriterError {
            let message = error == .overloaded ? "The site is busy; try again shortly." : "The site is shutting down."
            return SiteResponse.platformError(.serviceUnavailable, message, headers: [.retryAfter: "1"])
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return SiteResponse.platformError(.internalServerError, "The site could not complete the request.")
        }
    }
}

/// Counts the Atlassian API requests the site received (after authentication), so that a test or
/// a benchmark can prove that a worker made no site call (`/_local/v1/counts` reports it).
final class RequestCounter: Sendable {
    private let count = Atomic<Int>(0)

    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// Adds one to the counter for every request that reaches the Atlassian endpoints.
struct RequestCountingMiddleware<Context: RequestContext>: RouterMiddleware {
    let counter: RequestCounter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        counter.increment()
        return try await next(request, context)
    }
}

/// Fault injection for tests and drills (`POST /_local/v1/faults?failures=N&status=S`): the first
/// customer creation after arming picks its email as the victim, and that email's creations answer
/// `status` until `failures` of them have, while every other email goes through. So one batch
/// fails a known number of attempts whatever the order of its requests.
final class FaultInjector: Sendable {
    private struct State {
        var remaining = 0
        var status = 500
        var victim: String?
    }

    private let state = Mutex(State())

    /// Arms `failures` failures answering `status`, for the next email to come.
    func arm(failures: Int, status: Int) {
        state.withLock { $0 = State(remaining: max(0, failures), status: status, victim: nil) }
    }

    /// The status to answer instead of creating an account for `email`, if it is the victim.
    func failure(for email: String) -> Int? {
        state.withLock { state in
            guard state.remaining > 0 else { return nil }
            if state.victim == nil { state.victim = email }
            guard state.victim == email else { return nil }
            state.remaining -= 1
            return state.status
        }
    }
}

/// A burst of failures for fault-injection drills (`POST /_local/v1/faults?mode=burst&failures=N&status=S`):
/// the next `N` requests to the Atlassian endpoints, whatever they ask, answer `S` (429 and 503 with
/// `Retry-After: 1`), the way a real site sheds load for a while. Unlike ``FaultInjector`` it spreads
/// over every batch in flight, and it counts what it answered so a drill can prove it took effect.
final class BurstInjector: Sendable {
    private struct State {
        var remaining = 0
        var status = 503
        var answered = 0
    }

    private let state = Mutex(State())

    /// Arms a burst of `failures` answers with `status` (replacing any burst still running).
    func arm(failures: Int, status: Int) {
        state.withLock { state in
            state.remaining = max(0, failures)
            state.status = status
        }
    }

    /// The status to answer instead of handling the request, while the burst lasts.
    func failure() -> Int? {
        state.withLock { state in
            guard state.remaining > 0 else { return nil }
            state.remaining -= 1
            state.answered += 1
            return state.status
        }
    }

    /// Injected answers sent since the site started (every burst).
    var answered: Int { state.withLock { $0.answered } }
}

/// Answers a request of the Atlassian endpoints with the armed burst's status while it lasts.
struct BurstFaultMiddleware<Context: RequestContext>: RouterMiddleware {
    let burst: BurstInjector

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let status = burst.failure() else { return try await next(request, context) }
        let throttled = status == 429 || status == 503
        return SiteResponse.platformError(
            HTTPResponse.Status(code: status), "Injected fault burst (POST /_local/v1/faults?mode=burst).",
            headers: throttled ? [.retryAfter: "1"] : [:])
    }
}
