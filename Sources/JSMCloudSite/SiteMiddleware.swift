import Foundation
import Hummingbird
import Logging

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

    private func presentsToken(_ header: String) -> Bool {
        guard header.count > 6, header.prefix(6).lowercased() == "basic ",
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return false }
        let presented = Array(decoded[decoded.index(after: colon)...])
        guard presented.count == token.count else { return false }
        var difference: UInt8 = 0
        for (lhs, rhs) in zip(presented, token) { difference |= lhs ^ rhs }
        return difference == 0
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
