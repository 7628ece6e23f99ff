import AsyncHTTPClient
import Foundation
import JSMDomain
import Logging
import Metrics
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// The cloud-site port over Atlassian Cloud's REST API, through one pool of keep-alive HTTP/1.1
/// connections (``SiteConnectionPool``, SwiftNIO's HTTP codec).
///
/// It works the same against a real site and against `jsm-migrate cloud-site`. A customer is
/// create-then-link: it asks the site to create, and on 409 looks the email up and links. An
/// Atlassian account is look-up-then-create, since Atlassian's "Create user" answers 201 for an
/// account that already exists with Jira access; an "exists" answer to the creation (400 or 409)
/// is looked up again and linked. Either way concurrent workers and redelivered messages converge
/// on one account. 429 and 503 are waited out per ``ThrottleRetryPolicy``; timeouts and other 5xx
/// answers are thrown as retriable
/// ``CloudSiteError``s for the worker to return the batch to the queue.
public final class AtlassianCloudSite: CloudSite {
    /// The settings in use (the token inside is never logged).
    public let configuration: AtlassianCloudConfiguration
    /// What the adapter has done so far.
    public let metrics: CloudSiteMetrics
    private let pool: SiteConnectionPool
    /// `Authorization` and `Accept`, built once: every request starts from a copy.
    private let baseHeaders: HTTPHeaders
    private static let customerPath = "/rest/servicedeskapi/customer"
    private static let userPath = "/rest/api/3/user"
    private let host: String
    private let logger: Logger
    /// One decoder and one encoder for every answer and request: built once, not per call.
    private let decoder = JSONDecoder()
    private let encoder = JSONEncoder()

    /// An adapter with a connection pool of its own (at most `maxConcurrentRequests` connections);
    /// call ``shutdown()`` when done, or use ``withSite(configuration:metrics:logger:_:)``.
    public init(
        configuration: AtlassianCloudConfiguration,
        metrics: CloudSiteMetrics = CloudSiteMetrics(),
        logger: Logger = Logger(label: "jsm.cloud-site")
    ) {
        self.configuration = configuration
        self.pool = SiteConnectionPool(
            baseURL: configuration.baseURL, maxConnections: configuration.maxConcurrentRequests,
            connectTimeout: configuration.connectTimeout, caCertificateFile: configuration.caCertificateFile)
        self.metrics = metrics
        self.logger = logger
        let credentials = Data("\(configuration.userEmail):\(configuration.apiToken)".utf8)
        var headers = HTTPHeaders()
        headers.add(name: "Authorization", value: "Basic " + credentials.base64EncodedString())
        headers.add(name: "Accept", value: "application/json")
        self.baseHeaders = headers
        self.host = Self.hostPart(of: configuration.baseURL)
    }

    /// Closes the pool's connections; requests after this fail as unreachable.
    public func shutdown() async {
        await pool.shutdown()
    }

    /// An AsyncHTTPClient `HTTPClient` for the site's other readers (the verify audit, the
    /// benchmark's baseline), sized for the configuration: at most `maxConcurrentRequests`
    /// connections, kept alive and reused, with the configured connect timeout and trusted
    /// authorities; no redirects followed.
    ///
    /// The request timeout is each request's deadline (see `send`), which bounds the whole exchange;
    /// an idle-read timeout of the same length could never fire first, yet would cost a timer
    /// scheduled and cancelled on every request, so there is none.
    public static func makeHTTPClient(for configuration: AtlassianCloudConfiguration) -> HTTPClient {
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, configuration.maxConcurrentRequests)
        )
        clientConfiguration.timeout = .init(connect: TimeAmount(configuration.connectTimeout))
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.httpVersion = .http1Only
        // The engine records no distributed traces; with the default (the global no-op tracer) the
        // client would still build a span and its attributes for every request.
        clientConfiguration.tracing.tracer = nil
        if let caFile = configuration.caCertificateFile {
            clientConfiguration.tlsConfiguration = .siteClient(caCertificateFile: caFile)
        }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    /// Runs `body` with an adapter, and shuts its connections down afterwards.
    public static func withSite<Result: Sendable>(
        configuration: AtlassianCloudConfiguration,
        metrics: CloudSiteMetrics = CloudSiteMetrics(),
        logger: Logger = Logger(label: "jsm.cloud-site"),
        _ body: (AtlassianCloudSite) async throws -> Result
    ) async throws -> Result {
        let site = AtlassianCloudSite(configuration: configuration, metrics: metrics, logger: logger)
        do {
            let result = try await body(site)
            await site.shutdown()
            return result
        } catch {
            await site.shutdown()
            throw error
        }
    }

    // MARK: The port

    /// `GET /rest/api/3/user/search?query=<email>`, keeping only Atlassian and customer accounts
    /// whose address is exactly this one (Atlassian's search also matches prefixes and names).
    public func accounts(withEmail email: NormalizedEmail) async throws -> [ExistingCloudAccount] {
        let path = "/rest/api/3/user/search"
        let query = "query=\(Self.percentEncoded(email.value))&maxResults=50"
        let answer = try await send(.GET, path: path, query: query, body: nil)
        guard answer.status == 200 else { throw failure(answer, path: "GET \(path)") }
        let users = try decodeUsers(from: answer, path: "GET \(path)")
        var atlassian: [ExistingCloudAccount] = []
        var customers: [ExistingCloudAccount] = []
        for user in users {
            guard let address = user.emailAddress, NormalizedEmail(address) == email else { continue }
            switch user.accountType.flatMap(CloudAccountType.init(rawValue:)) {
            case .atlassian: atlassian.append(ExistingCloudAccount(accountId: user.accountId, type: .atlassian))
            case .customer: customers.append(ExistingCloudAccount(accountId: user.accountId, type: .customer))
            case nil: continue
            }
        }
        return atlassian + customers
    }

    /// `POST /rest/servicedeskapi/customer?strictConflictStatusCode=true`; on 409, links to the
    /// email's Atlassian account if it has one, else to its customer account.
    public func createCustomer(email: NormalizedEmail, displayName: String) async throws -> AccountProvisioning {
        let path = Self.customerPath
        let body = CustomerCreateBody(email: email.value, displayName: displayName)
        let answer = try await send(.POST, path: path, query: "strictConflictStatusCode=true", body: encoded(body))
        let result: AccountProvisioning
        switch answer.status {
        case 201, 200:
            let user = try decodeUser(from: answer, path: "POST \(path)")
            result = .created(ExistingCloudAccount(accountId: user.accountId, type: .customer))
        case 409:
            let existing = try await accounts(withEmail: email)
            guard let account = existing.first else { throw conflictWithoutAccount(path: "POST \(path)", status: 409) }
            result = .linked(account)
        default:
            throw failure(answer, path: "POST \(path)")
        }
        metrics.recordProvisioning(result)
        return result
    }

    /// Looks the email up first and links to its Atlassian account if it has one; otherwise
    /// `POST /rest/api/3/user` with `products: []` (no licence, no invitation).
    ///
    /// Atlassian answers 201 both for a new account and for an existing one with Jira access, so
    /// only the lookup first tells a link from a creation. An answer that says the account exists
    /// (400 for an existing account without Jira access, which is what a concurrent or earlier
    /// migration makes, or 409) is followed by a second lookup and becomes a link; a 400 with no
    /// Atlassian account behind it is a refusal. A customer account with the same email is never a
    /// reason to link: the rules then want a second, Atlassian, account.
    public func createAtlassianAccount(email: NormalizedEmail, displayName: String) async throws -> AccountProvisioning
    {
        if let existing = try await atlassianAccount(withEmail: email) {
            let result = AccountProvisioning.linked(existing)
            metrics.recordProvisioning(result)
            return result
        }
        return try await postAtlassianAccount(email: email, displayName: displayName)
    }

    /// Skips the adapter's own lookup when the caller's search of this email, just before, found no
    /// Atlassian account (a worker searches first to apply the rules): one request fewer per user.
    public func createAtlassianAccount(
        email: NormalizedEmail, displayName: String, afterSearchFound existing: [ExistingCloudAccount]
    ) async throws -> AccountProvisioning {
        if let atlassian = existing.first(where: { $0.type == .atlassian }) {
            let result = AccountProvisioning.linked(atlassian)
            metrics.recordProvisioning(result)
            return result
        }
        return try await postAtlassianAccount(email: email, displayName: displayName)
    }

    /// `POST /rest/api/3/user` with no products; an "already exists" answer becomes a link.
    private func postAtlassianAccount(email: NormalizedEmail, displayName: String) async throws
        -> AccountProvisioning
    {
        let path = Self.userPath
        let result: AccountProvisioning
        let body = UserCreateBody(emailAddress: email.value, displayName: displayName, products: [])
        let answer = try await send(.POST, path: path, query: nil, body: encoded(body))
        switch answer.status {
        case 201, 200:
            let user = try decodeUser(from: answer, path: "POST \(path)")
            result = .created(ExistingCloudAccount(accountId: user.accountId, type: .atlassian))
        case 400:
            guard let existing = try await atlassianAccount(withEmail: email) else {
                throw failure(answer, path: "POST \(path)")
            }
            result = .linked(existing)
        case 409:
            guard let existing = try await atlassianAccount(withEmail: email) else {
                throw conflictWithoutAccount(path: "POST \(path)", status: 409)
            }
            result = .linked(existing)
        default:
            throw failure(answer, path: "POST \(path)")
        }
        metrics.recordProvisioning(result)
        return result
    }

    /// The email's Atlassian account, if it has one (its customer account does not count).
    private func atlassianAccount(withEmail email: NormalizedEmail) async throws -> ExistingCloudAccount? {
        try await accounts(withEmail: email).first { $0.type == .atlassian }
    }

    /// `POST /rest/api/3/group`; when the site refuses because the name is taken (400), the group
    /// with that name is looked up with `GET /rest/api/3/group/bulk` and reused.
    public func createGroup(named name: String) async throws -> GroupProvisioning {
        let path = "/rest/api/3/group"
        let answer = try await send(
            .POST, path: path, query: nil, body: try encoded(GroupCreateBody(name: name), path: "POST \(path)"))
        switch answer.status {
        case 201, 200:
            let group = try decode(GroupBody.self, from: answer, path: "POST \(path)")
            guard let groupId = group.groupId else {
                throw unexpected(answer, path: "POST \(path)", message: "the created group has no groupId")
            }
            return .created(CloudGroup(groupId: groupId, name: group.name))
        case 400, 409:
            if let existing = try await group(named: name) { return .reused(existing) }
            throw failure(answer, path: "POST \(path)")
        default:
            throw failure(answer, path: "POST \(path)")
        }
    }

    /// `POST /rest/api/3/group/user?groupId=`; Atlassian answers 400 "already a member" for an
    /// existing membership, which is success here.
    public func addMember(accountId: String, toGroupId groupId: String) async throws -> MembershipChange {
        let path = "/rest/api/3/group/user"
        let answer = try await send(
            .POST, path: path, query: "groupId=\(Self.percentEncoded(groupId))",
            body: try encoded(GroupMemberBody(accountId: accountId), path: "POST \(path)"))
        switch answer.status {
        case 201, 200:
            return .added
        case 400 where errorText(answer).localizedCaseInsensitiveContains("already a member"):
            return .alreadyMember
        default:
            throw failure(answer, path: "POST \(path)")
        }
    }

    /// The group with exactly this name (case-insensitive, as Jira compares group names), if any.
    public func group(named name: String) async throws -> CloudGroup? {
        let path = "/rest/api/3/group/bulk"
        let answer = try await send(
            .GET, path: path, query: "groupName=\(Self.percentEncoded(name))", body: nil)
        guard answer.status == 200 else { throw failure(answer, path: "GET \(path)") }
        let page = try decode(GroupPageBody.self, from: answer, path: "GET \(path)")
        let match = page.values.first { $0.name.lowercased() == name.lowercased() }
        guard let match, let groupId = match.groupId else { return nil }
        return CloudGroup(groupId: groupId, name: match.name)
    }

    /// Group ids asked of `GET /rest/api/3/group/bulk` at once (its default page size).
    public static let groupIdsPerLookup = 50

    /// `GET /rest/api/3/group/bulk?groupId=...&maxResults=50`, 50 ids a request: the ids the site
    /// lists are the groups it still has.
    public func existingGroupIds(_ groupIds: [String]) async throws -> Set<String> {
        let path = "/rest/api/3/group/bulk"
        var found = Set<String>()
        for chunk in Array(Set(groupIds)).sorted().chunked(Self.groupIdsPerLookup) {
            let ids = chunk.map { "groupId=\(Self.percentEncoded($0))" }.joined(separator: "&")
            let answer = try await send(
                .GET, path: path, query: "\(ids)&maxResults=\(Self.groupIdsPerLookup)", body: nil)
            guard answer.status == 200 else { throw failure(answer, path: "GET \(path)") }
            let page = try decode(GroupPageBody.self, from: answer, path: "GET \(path)")
            found.formUnion(page.values.compactMap(\.groupId).filter(chunk.contains))
        }
        return found
    }

    /// `GET /rest/api/3/group/member?groupId=&includeInactiveUsers=true&startAt=&maxResults=`: one
    /// page of the group's members, inactive accounts included (adding one of them is still "already
    /// a member"); `nil` on 404, the site's answer for a group that does not exist.
    public func groupMembers(ofGroupId groupId: String, startAt: Int, maxResults: Int) async throws
        -> GroupMemberPage?
    {
        let path = "/rest/api/3/group/member"
        let size = min(max(1, maxResults), GroupMemberPage.largestSize)
        let query =
            "groupId=\(Self.percentEncoded(groupId))&includeInactiveUsers=true&startAt=\(max(0, startAt))&maxResults=\(size)"
        let answer = try await send(.GET, path: path, query: query, body: nil)
        if answer.status == 404 { return nil }
        guard answer.status == 200 else { throw failure(answer, path: "GET \(path)") }
        let page = try decode(GroupMemberPageBody.self, from: answer, path: "GET \(path)")
        let accountIds = page.values.map(\.accountId)
        return GroupMemberPage(
            accountIds: accountIds, total: page.total ?? (max(0, startAt) + accountIds.count),
            isLast: page.isLast ?? (accountIds.count < size))
    }

    // MARK: The wire

    /// A site's answer, read in full.
    struct Answer {
        let status: Int
        let body: ByteBuffer
        /// The `Retry-After` header, read only from 429 and 503 answers.
        let retryAfter: String?
    }

    /// Sends one request, waiting out 429 and 503 per the retry policy; transport failures are
    /// thrown as retriable errors and counted.
    private func send(_ method: HTTPMethod, path: String, query: String?, body: ByteBuffer?) async throws -> Answer {
        var target = path
        if let query {
            target.reserveCapacity(path.utf8.count + query.utf8.count + 1)
            target += "?"
            target += query
        }
        var headers = baseHeaders
        if body != nil { headers.add(name: "Content-Type", value: "application/json") }
        let policy = configuration.retry
        let started = ContinuousClock.now
        var attempt = 0
        while true {
            attempt += 1
            metrics.recordRequest()
            let answer: Answer
            do {
                let sent = ContinuousClock.now
                let response = try await pool.execute(
                    method: method, target: target, headers: headers, body: body,
                    deadline: .now() + TimeAmount(configuration.requestTimeout),
                    maxBodyBytes: configuration.maxResponseBytes)
                let status = response.status
                Self.recordLatency(sent.duration(to: .now), method: method, path: path)
                let retryAfter = status == 429 || status == 503 ? response.headers.first(name: "Retry-After") : nil
                answer = Answer(status: status, body: response.body, retryAfter: retryAfter)
            } catch let error as CancellationError {
                throw error
            } catch {
                let mapped = transportError(error, path: "\(method.rawValue) \(path)")
                metrics.recordFailure(mapped)
                throw mapped
            }
            guard answer.status == 429 || answer.status == 503 else { return answer }
            metrics.recordThrottled()
            let retryAfter = RetryAfter.parse(answer.retryAfter, now: Date().timeIntervalSince1970)
            let delay = policy.delay(afterAttempt: attempt, retryAfter: retryAfter)
            let waited = ContinuousClock.now - started
            guard attempt < policy.maxAttempts, waited + delay <= policy.maxTotalWait else {
                let error = CloudSiteError(
                    code: .throttled, status: answer.status, host: host, path: "\(method.rawValue) \(path)",
                    message: "still throttled after \(attempt) attempts over \(waited)")
                metrics.recordFailure(error)
                throw error
            }
            logger.debug(
                "site throttled the request; waiting",
                metadata: [
                    "path": "\(method.rawValue) \(path)", "status": "\(answer.status)", "attempt": "\(attempt)",
                    "delay": "\(delay)",
                ])
            try await Task.sleep(for: delay)
        }
    }

    /// The name of the site-call latency histogram (one HTTP exchange, retries apart), by
    /// `method` and `path` (never the query, which holds emails).
    public static let latencyMetric = "jsm_site_request_duration_seconds"

    /// Records one exchange's latency through swift-metrics (a no-op unless the process set up a
    /// metrics backend, as `--metrics-port` does).
    private static func recordLatency(_ elapsed: Duration, method: HTTPMethod, path: String) {
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        Timer(label: latencyMetric, dimensions: [("method", method.rawValue), ("path", path)])
            .recordNanoseconds(nanoseconds)
    }

    /// A body the adapter writes itself, as one buffer.
    private func encoded(_ body: some HandWrittenJSON) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        body.writeJSON(to: &buffer)
        return buffer
    }

    /// A rarer body, through `JSONEncoder`.
    private func encoded(_ body: some Encodable, path: String) throws -> ByteBuffer {
        do {
            return ByteBuffer(data: try encoder.encode(body))
        } catch {
            throw CloudSiteError(
                code: .invalidRequest, host: host, path: path, message: "cannot encode the request: \(error)")
        }
    }

    /// One user: read by ``UserAnswerReader`` when the answer is plain, else by `JSONDecoder`,
    /// which then gives the same result or the same error as it always has.
    private func decodeUser(from answer: Answer, path: String) throws -> UserBody {
        if let user = UserAnswerReader.user(in: answer.body) { return user }
        return try decode(UserBody.self, from: answer, path: path)
    }

    /// A search's users, read the same way as ``decodeUser(from:path:)``.
    private func decodeUsers(from answer: Answer, path: String) throws -> [UserBody] {
        if let users = UserAnswerReader.users(in: answer.body) { return users }
        return try decode([UserBody].self, from: answer, path: path)
    }

    private func decode<Value: Decodable>(_ type: Value.Type, from answer: Answer, path: String) throws -> Value {
        do {
            return try decoder.decode(type, from: answer.body)
        } catch {
            let failure = unexpected(answer, path: path, message: "cannot read the answer: \(error)")
            metrics.recordFailure(failure)
            throw failure
        }
    }

    private func errorText(_ answer: Answer) -> String {
        if let body = try? decoder.decode(ErrorBody.self, from: answer.body), !body.text.isEmpty {
            return body.text
        }
        return String(buffer: answer.body).prefix(500).description
    }

    /// Maps an HTTP answer that is not success to the port's error, and counts it.
    private func failure(_ answer: Answer, path: String) -> CloudSiteError {
        let code: CloudSiteError.Code
        switch answer.status {
        case 400, 413, 422: code = .invalidRequest
        case 401: code = .unauthorized
        case 403: code = .forbidden
        case 404: code = .notFound
        case 500...599: code = .serverError
        default: code = .unexpectedResponse
        }
        let error = CloudSiteError(
            code: code, status: answer.status, host: host, path: path, message: errorText(answer))
        metrics.recordFailure(error)
        return error
    }

    private func unexpected(_ answer: Answer, path: String, message: String) -> CloudSiteError {
        CloudSiteError(code: .unexpectedResponse, status: answer.status, host: host, path: path, message: message)
    }

    private func conflictWithoutAccount(path: String, status: Int) -> CloudSiteError {
        let error = CloudSiteError(
            code: .conflictWithoutAccount, status: status, host: host, path: path,
            message: "the site reported an existing account that its search does not return yet")
        metrics.recordFailure(error)
        return error
    }

    /// Transport failures: all retriable, since the request is idempotent from the worker's view,
    /// except an answer over the size limit, which is an unexpected response (the configuration's
    /// rule), and a base URL that cannot be used.
    private func transportError(_ error: any Error, path: String) -> CloudSiteError {
        guard let failure = error as? SiteTransportError else {
            return CloudSiteError(
                code: .unreachable, host: host, path: path, message: "cannot reach the site (\(error))")
        }
        let code: CloudSiteError.Code
        switch failure.kind {
        case .tooManyBytes: code = .unexpectedResponse
        case .invalidURL: code = .invalidRequest
        case .deadlineExceeded: code = .timeout
        case .connectTimeout, .connectFailed, .tlsFailed, .connectionClosed, .malformedAnswer, .shutDown:
            code = .unreachable
        }
        return CloudSiteError(code: code, host: host, path: path, message: failure.detail)
    }

    /// `host:port` of a base URL, for error messages.
    static func hostPart(of baseURL: String) -> String {
        var rest = Substring(baseURL)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        return String(rest)
    }

    /// Percent-encodes a query value (RFC 3986 unreserved characters stay as they are), writing the
    /// bytes straight into the new string.
    static func percentEncoded(_ value: String) -> String {
        let utf8 = value.utf8
        return String(unsafeUninitializedCapacity: utf8.count * 3) { output in
            var count = 0
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "~"):
                    output[count] = byte
                    count += 1
                default:
                    output[count] = UInt8(ascii: "%")
                    output[count + 1] = hexDigit(byte >> 4)
                    output[count + 2] = hexDigit(byte & 0x0F)
                    count += 3
                }
            }
            return count
        }
    }

    /// The upper-case hexadecimal digit of a value below 16.
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }
}
