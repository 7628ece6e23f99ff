import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// What went wrong below HTTP, for the adapter to turn into a ``CloudSiteError``.
struct SiteTransportError: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        /// The base URL cannot be used (scheme, host or port).
        case invalidURL
        /// No TCP connection (or TLS handshake) within the connect timeout.
        case connectTimeout
        /// The connection was refused or failed before any request.
        case connectFailed
        /// The TLS handshake failed: an untrusted certificate, a name that does not match, ...
        case tlsFailed
        /// No complete answer before the request's deadline.
        case deadlineExceeded
        /// The connection closed or broke before the answer was complete.
        case connectionClosed
        /// The answer was not HTTP/1.1 the decoder understands.
        case malformedAnswer
        /// The answer's body is larger than the limit.
        case tooManyBytes
        /// The pool was shut down.
        case shutDown
    }

    let kind: Kind
    let detail: String
    /// Whether any part of an answer had arrived when the connection closed: without one, a request
    /// on a reused connection met a keep-alive connection the site had just closed.
    var answerStarted = false

    var description: String { detail }
}

/// An answer, read in full.
struct SiteHTTPAnswer: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: ByteBuffer
    /// Whether the connection may carry another request.
    let keepAlive: Bool
}

/// Where a base URL points: `http[s]://host[:port][/prefix]`.
struct SiteEndpoint: Sendable, Equatable {
    var host: String
    var port: Int
    var useTLS: Bool
    /// A path the site's API lives under, without a trailing slash ("" for none).
    var pathPrefix: String

    /// The `Host` header: the port only when it is not the scheme's default.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (useTLS ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// The name TLS checks the certificate against and sends as SNI; an address literal has none.
    var tlsServerName: String? {
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        return isAddress ? nil : host
    }
}

extension SiteEndpoint {

    /// Parses a base URL; `nil` when the scheme is not http or https, the host is empty or the
    /// port is not a number in 1...65535. User information in the URL is not accepted.
    init?(baseURL: String) {
        let lowered = baseURL.lowercased()
        let rest: Substring
        if lowered.hasPrefix("https://") {
            useTLS = true
            rest = baseURL.dropFirst("https://".count)
        } else if lowered.hasPrefix("http://") {
            useTLS = false
            rest = baseURL.dropFirst("http://".count)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" }
        var prefix = String(rest.dropFirst(authority.count))
        while prefix.hasSuffix("/") { prefix.removeLast() }
        guard !authority.contains("@"), !authority.contains("?"), !authority.contains("#") else { return nil }
        var hostPart = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { return nil }
        host = String(hostPart)
        if let portText {
            guard let value = Int(portText), (1...65_535).contains(value) else { return nil }
            port = value
        } else {
            port = useTLS ? 443 : 80
        }
        pathPrefix = prefix
    }
}

/// HTTP/1.1 keep-alive connections to one site, at most `maxConnections` at once, one request on
/// a connection at a time, over SwiftNIO's HTTP codec (and NIOSSL for https).
///
/// Why not AsyncHTTPClient, which the rest of the project uses for the site's rarer reads: a
/// migration makes about one site request per identity, and on the workers' hot path the client's
/// own CPU was about as large as the site's work for a creation (61-64 us a creation against the
/// site's 66-82 us, 2026-11-26 measurements in the README), and it flushes a request's head before
/// its body, so the site reads each request twice. Here a request is one write of its parts and
/// one flush, and an answer one promise; `site-benchmark` measures both clients side by side.
///
/// Connections are handed out and taken back under a lock; a caller that finds every connection
/// busy waits its turn (FIFO). A request is bounded by its deadline from leasing to the answer's
/// last byte. A reused connection that the site closed while idle (the keep-alive race) is retried
/// once on a new connection when no byte of the answer had come; nothing else is retried here.
final class SiteConnectionPool: Sendable {
    private let endpoint: SiteEndpoint?
    private let group: any EventLoopGroup
    private let maxConnections: Int
    private let connectTimeout: TimeAmount
    /// A connection idle this long is closed rather than reused (sites drop idle connections).
    private let idleTimeout: TimeAmount
    private let sslContext: NIOSSLContext?
    private let tlsSetupError: String?
    private let state = NIOLockedValueBox(State())

    private struct IdleConnection {
        let channel: any Channel
        let since: NIODeadline
    }

    private struct Waiter {
        let id: Int
        /// Resumed with a connection, or with `nil` when a slot was freed for the waiter to connect.
        let continuation: CheckedContinuation<(any Channel)?, any Error>
    }

    private struct State {
        var idle: [IdleConnection] = []
        /// Connections open or being opened, idle ones included.
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterId = 0
        var isShutDown = false
    }

    /// - Parameter caCertificateFile: a PEM file of the authorities to trust for https instead of
    ///   the system's (a corporate proxy's CA, a test CA); `nil` for the system's.
    init(
        baseURL: String, maxConnections: Int, connectTimeout: Duration, idleTimeout: Duration = .seconds(60),
        caCertificateFile: String? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.endpoint = SiteEndpoint(baseURL: baseURL)
        self.group = group
        self.maxConnections = max(1, maxConnections)
        self.connectTimeout = TimeAmount(connectTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
        var sslContext: NIOSSLContext?
        var tlsSetupError: String?
        if endpoint?.useTLS == true {
            do {
                sslContext = try NIOSSLContext(configuration: .siteClient(caCertificateFile: caCertificateFile))
            } catch {
                tlsSetupError = "cannot set up TLS (\(caCertificateFile.map { "CA file \($0): " } ?? "")\(error))"
            }
        }
        self.sslContext = sslContext
        self.tlsSetupError = tlsSetupError
    }

    /// Sends one request and reads its whole answer.
    ///
    /// - Parameters:
    ///   - target: the path and query, without the base URL's path prefix.
    ///   - headers: the request's headers; `Host` and, with a body, `Content-Length` are added.
    ///   - deadline: when to give up, from asking for a connection to the answer's last byte.
    func execute(
        method: HTTPMethod, target: String, headers: HTTPHeaders, body: ByteBuffer?, deadline: NIODeadline,
        maxBodyBytes: Int
    ) async throws -> SiteHTTPAnswer {
        guard let endpoint else {
            throw SiteTransportError(
                kind: .invalidURL, detail: "the site URL must look like http[s]://HOST[:PORT][/PATH]")
        }
        var head = HTTPRequestHead(
            version: .http1_1, method: method, uri: endpoint.pathPrefix + target, headers: headers)
        head.headers.add(name: "Host", value: endpoint.hostHeader)
        if let body { head.headers.add(name: "Content-Length", value: String(body.readableBytes)) }
        for attempt in 1...2 {
            let (channel, reused) = try await lease(endpoint: endpoint, deadline: deadline)
            let promise = channel.eventLoop.makePromise(of: SiteHTTPAnswer.self)
            let exchange = SiteExchange(
                head: head, body: body, deadline: deadline, maxBodyBytes: maxBodyBytes, promise: promise)
            channel.writeAndFlush(exchange).whenFailure { error in
                promise.fail(SiteExchangeHandler.classify(error))
            }
            do {
                let answer = try await promise.futureResult.get()
                release(channel, reusable: answer.keepAlive)
                return answer
            } catch let error as SiteTransportError {
                release(channel, reusable: false)
                if error.kind == .connectionClosed, !error.answerStarted, reused, attempt == 1,
                    NIODeadline.now() < deadline
                {
                    continue
                }
                throw error
            } catch {
                release(channel, reusable: false)
                throw SiteExchangeHandler.classify(error)
            }
        }
        throw SiteTransportError(kind: .connectionClosed, detail: "the site closed the connection twice")
    }

    /// Closes every idle connection and refuses new requests; requests in flight finish, and their
    /// connections are closed when they come back.
    func shutdown() async {
        let (idle, waiters) = state.withLockedValue { state -> ([IdleConnection], [Waiter]) in
            state.isShutDown = true
            defer {
                state.idle = []
                state.waiters = []
            }
            state.open -= state.idle.count
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: SiteTransportError(kind: .shutDown, detail: "the client is shut down"))
        }
        for connection in idle {
            try? await connection.channel.close()
        }
    }

    // MARK: Leasing

    private enum Lease {
        case reuse(any Channel)
        case connect
        case wait
    }

    /// A connection for one request: an idle one, a new one while under the limit, or the next one
    /// given back.
    private func lease(endpoint: SiteEndpoint, deadline: NIODeadline) async throws -> (any Channel, reused: Bool) {
        let now = NIODeadline.now()
        var stale: [any Channel] = []
        let decision = try state.withLockedValue { state -> Lease in
            guard !state.isShutDown else {
                throw SiteTransportError(kind: .shutDown, detail: "the client is shut down")
            }
            while let connection = state.idle.popLast() {
                if connection.channel.isActive, now - connection.since < idleTimeout {
                    return .reuse(connection.channel)
                }
                stale.append(connection.channel)
                state.open -= 1
            }
            if state.open < maxConnections {
                state.open += 1
                return .connect
            }
            return .wait
        }
        for channel in stale { channel.close(promise: nil) }
        switch decision {
        case .reuse(let channel):
            return (channel, true)
        case .connect:
            return (try await connectHoldingSlot(endpoint: endpoint), false)
        case .wait:
            if let channel = try await waitForConnection(deadline: deadline) { return (channel, true) }
            return (try await connectHoldingSlot(endpoint: endpoint), false)
        }
    }

    /// Waits for a connection given back (or a slot freed) until `deadline`.
    private func waitForConnection(deadline: NIODeadline) async throws -> (any Channel)? {
        let id = state.withLockedValue { state -> Int in
            state.nextWaiterId += 1
            return state.nextWaiterId
        }
        let timeout = group.next().scheduleTask(deadline: deadline) { [self] in
            self.removeWaiter(
                id,
                failing: SiteTransportError(
                    kind: .deadlineExceeded, detail: "no connection to the site came free in time"))
        }
        defer { timeout.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<(any Channel)?, any Error>) in
                let refused: SiteTransportError? = state.withLockedValue { state in
                    if state.isShutDown {
                        return SiteTransportError(kind: .shutDown, detail: "the client is shut down")
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let refused { continuation.resume(throwing: refused) }
            }
        } onCancel: {
            self.removeWaiter(id, failing: CancellationError())
        }
    }

    private func removeWaiter(_ id: Int, failing error: any Error) {
        let waiter = state.withLockedValue { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    /// Gives a connection back: to the first waiter, to the idle list, or closed (its slot then
    /// goes to the first waiter, who connects).
    private func release(_ channel: any Channel, reusable: Bool) {
        enum Next {
            case handOver(Waiter)
            case freeSlot(Waiter)
            case keep
            case close
        }
        let keep = reusable && channel.isActive
        let next = state.withLockedValue { state -> Next in
            if keep, !state.isShutDown {
                if !state.waiters.isEmpty { return .handOver(state.waiters.removeFirst()) }
                state.idle.append(IdleConnection(channel: channel, since: .now()))
                return .keep
            }
            if !state.isShutDown, !state.waiters.isEmpty { return .freeSlot(state.waiters.removeFirst()) }
            state.open -= 1
            return .close
        }
        switch next {
        case .handOver(let waiter):
            waiter.continuation.resume(returning: channel)
        case .freeSlot(let waiter):
            channel.close(promise: nil)
            waiter.continuation.resume(returning: nil)
        case .keep:
            break
        case .close:
            channel.close(promise: nil)
        }
    }

    /// Opens a connection for a slot already counted in `open`, giving the slot back on failure.
    private func connectHoldingSlot(endpoint: SiteEndpoint) async throws -> any Channel {
        do {
            return try await connect(endpoint: endpoint)
        } catch {
            let waiter = state.withLockedValue { state -> Waiter? in
                if !state.isShutDown, !state.waiters.isEmpty { return state.waiters.removeFirst() }
                state.open -= 1
                return nil
            }
            waiter?.continuation.resume(returning: nil)
            throw error
        }
    }

    /// A new connection, its TLS handshake done when the site is https.
    private func connect(endpoint: SiteEndpoint) async throws -> any Channel {
        if let tlsSetupError { throw SiteTransportError(kind: .tlsFailed, detail: tlsSetupError) }
        let eventLoop = group.next()
        let ready = eventLoop.makePromise(of: Void.self)
        let sslContext = sslContext
        let serverName = endpoint.tlsServerName
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try pipeline.addHandler(HTTPRequestEncoder())
                    try pipeline.addHandler(
                        ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try pipeline.addHandler(SiteExchangeHandler(ready: ready, waitsForTLS: sslContext != nil))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            ready.fail(error)
            if case ChannelError.connectTimeout = error {
                throw SiteTransportError(
                    kind: .connectTimeout, detail: "no connection to \(endpoint.hostHeader) within \(connectTimeout)")
            }
            throw SiteTransportError(
                kind: .connectFailed, detail: "cannot connect to \(endpoint.hostHeader) (\(error))")
        }
        let handshakeTimeout = eventLoop.scheduleTask(in: connectTimeout) {
            ready.fail(
                SiteTransportError(
                    kind: .connectTimeout,
                    detail: "no TLS handshake with \(endpoint.hostHeader) within \(self.connectTimeout)"))
        }
        defer { handshakeTimeout.cancel() }
        do {
            try await ready.futureResult.get()
            return channel
        } catch {
            channel.close(promise: nil)
            var failure = SiteExchangeHandler.classify(error)
            if failure.kind == .connectionClosed {
                failure = SiteTransportError(
                    kind: .connectFailed, detail: "\(endpoint.hostHeader) closed the connection at once (\(error))")
            }
            throw failure
        }
    }
}

/// One request and the promise of its answer, handed to a connection's ``SiteExchangeHandler``.
struct SiteExchange: Sendable {
    let head: HTTPRequestHead
    let body: ByteBuffer?
    let deadline: NIODeadline
    let maxBodyBytes: Int
    let promise: EventLoopPromise<SiteHTTPAnswer>
}

/// The last handler of a site connection: writes an exchange's request as one flush and collects
/// its answer, failing it at its deadline, when the body outgrows its limit, or when the
/// connection breaks.
final class SiteExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = SiteExchange
    typealias OutboundOut = HTTPClientRequestPart

    private let ready: EventLoopPromise<Void>
    private let waitsForTLS: Bool
    private var exchange: SiteExchange?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?
    private var deadlineTimer: Scheduled<Void>?

    init(ready: EventLoopPromise<Void>, waitsForTLS: Bool) {
        self.ready = ready
        self.waitsForTLS = waitsForTLS
    }

    func channelActive(context: ChannelHandlerContext) {
        if !waitsForTLS { ready.succeed() }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent { ready.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard self.exchange == nil else {
            let error = SiteTransportError(kind: .connectionClosed, detail: "the connection already has a request")
            exchange.promise.fail(error)
            promise?.fail(error)
            return
        }
        self.exchange = exchange
        head = nil
        body = nil
        deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: exchange.deadline) {
            self.fail(context: context, SiteTransportError(kind: .deadlineExceeded, detail: "no answer in time"))
        }
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if let body = exchange.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange else {
            // An answer nobody asked for: the connection cannot be trusted with the next request.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
        case .body(var part):
            let size = (body?.readableBytes ?? 0) + part.readableBytes
            guard size <= exchange.maxBodyBytes else {
                fail(
                    context: context,
                    SiteTransportError(
                        kind: .tooManyBytes, detail: "the answer is larger than \(exchange.maxBodyBytes) bytes",
                        answerStarted: true))
                return
            }
            if body == nil { body = part } else { body!.writeBuffer(&part) }
        case .end:
            guard let responseHead = head else {
                fail(context: context, SiteTransportError(kind: .malformedAnswer, detail: "an answer without a head"))
                return
            }
            deadlineTimer?.cancel()
            deadlineTimer = nil
            self.exchange = nil
            head = nil
            let answer = SiteHTTPAnswer(
                status: Int(responseHead.status.code), headers: responseHead.headers, body: body ?? ByteBuffer(),
                keepAlive: responseHead.isKeepAlive)
            body = nil
            exchange.promise.succeed(answer)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(SiteTransportError(kind: .connectionClosed, detail: "the site closed the connection"))
        let closed = SiteTransportError(
            kind: .connectionClosed, detail: "the site closed the connection before the answer was complete",
            answerStarted: head != nil)
        fail(context: context, closed, close: false)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        var failure = Self.classify(error)
        failure.answerStarted = head != nil
        ready.fail(failure)
        fail(context: context, failure)
    }

    /// Fails the exchange in flight (once) and closes the connection.
    private func fail(context: ChannelHandlerContext, _ error: SiteTransportError, close: Bool = true) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        if let exchange {
            self.exchange = nil
            exchange.promise.fail(error)
        }
        head = nil
        body = nil
        if close { context.close(promise: nil) }
    }

    /// Names a NIO, NIOSSL or decoder error in the pool's terms.
    static func classify(_ error: any Error) -> SiteTransportError {
        if let error = error as? SiteTransportError { return error }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return SiteTransportError(kind: .tlsFailed, detail: "TLS failed (\(error))")
        }
        if error is HTTPParserError {
            return SiteTransportError(kind: .malformedAnswer, detail: "the answer is not valid HTTP/1.1 (\(error))")
        }
        return SiteTransportError(kind: .connectionClosed, detail: "the connection failed (\(error))")
    }
}

extension TLSConfiguration {
    /// A client configuration for the site: the system's trusted authorities, or those of
    /// `caCertificateFile` (PEM) when given. Both the pool and the audit's `HTTPClient` use it.
    static func siteClient(caCertificateFile: String?) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caCertificateFile { configuration.trustRoots = .file(caCertificateFile) }
        return configuration
    }
}
