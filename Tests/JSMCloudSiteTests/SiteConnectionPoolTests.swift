import Foundation
import JSMDomain
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

@testable import JSMCloud

/// The adapter's connection pool against a loopback HTTP/1.1 server that answers as each test
/// scripts it: the keep-alive race, the deadline, the connection limit and https. What the pool
/// does with the real local site (every creation, search and group call) is covered by the other
/// suites of this target, which all go through it.
@Suite("Site connection pool")
struct SiteConnectionPoolTests {
    @Test("a reused connection the site closes without an answer is replaced once; a new one is not retried")
    func keepAliveRace() async throws {
        // Connection 1 answers its first request and closes at its second, as a site that dropped
        // an idle connection while the request was on its way; every later connection answers.
        let server = try await ScriptedServer.start { connection, request in
            if connection == 1 && request == 2 { return .closeWithoutAnswer }
            return .answer(status: 200, body: "[]")
        }
        try await server.withAdapter { adapter in
            let email = try #require(NormalizedEmail("race@example.com"))
            #expect(try await adapter.accounts(withEmail: email).isEmpty)
            #expect(try await adapter.accounts(withEmail: email).isEmpty)
            #expect(server.stats.connections == 2)
            #expect(server.stats.requests == 3)
            #expect(adapter.metrics.snapshot.failures == 0)
        }
        // A new adapter, so a new first connection: a fresh connection closed without an answer
        // is an error, sent once.
        let fresh = try await ScriptedServer.start { _, _ in .closeWithoutAnswer }
        try await fresh.withAdapter { adapter in
            let error = await #expect(throws: CloudSiteError.self) {
                _ = try await adapter.accounts(withEmail: NormalizedEmail("race@example.com")!)
            }
            #expect(error?.code == .unreachable)
            #expect(error?.isRetriable == true)
            #expect(error?.path == "GET /rest/api/3/user/search")
            #expect(fresh.stats.requests == 1)
        }
    }

    @Test("a site that never answers is a retriable timeout at the request's deadline")
    func deadline() async throws {
        let server = try await ScriptedServer.start { _, _ in .never }
        try await server.withAdapter(requestTimeout: .milliseconds(300)) { adapter in
            let started = ContinuousClock.now
            let error = await #expect(throws: CloudSiteError.self) {
                _ = try await adapter.accounts(withEmail: NormalizedEmail("slow@example.com")!)
            }
            #expect(error?.code == .timeout)
            #expect(error?.isRetriable == true)
            // Bounded by the deadline, not by the 30 s default.
            #expect(started.duration(to: .now) < .seconds(20))
            #expect(server.stats.requests == 1)
        }
    }

    @Test("more callers than connections share at most maxConcurrentRequests connections, and all are answered")
    func connectionLimit() async throws {
        let server = try await ScriptedServer.start { _, _ in .answer(status: 200, body: "[]", delay: .milliseconds(20))
        }
        try await server.withAdapter(maxConcurrentRequests: 3) { adapter in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<24 {
                    group.addTask {
                        try await adapter.accounts(withEmail: NormalizedEmail("c\(index)@example.com")!).count
                    }
                }
                var answered = 0
                for try await found in group {
                    #expect(found == 0)
                    answered += 1
                }
                #expect(answered == 24)
            }
            let stats = server.stats
            #expect(stats.requests == 24)
            #expect(stats.peakOpen <= 3)
            #expect(stats.connections <= 3)
        }
    }

    @Test("https: a site whose certificate the configured CA signed is used; another CA's is refused")
    func tls() async throws {
        let environment = ProcessInfo.processInfo.environment
        let caFile = try #require(
            environment["AMQP_TLS_CA_FILE"], "AMQP_TLS_CA_FILE must be set by scripts/services.sh")
        let otherCA = try #require(environment["AMQP_TLS_OTHER_CA_FILE"], "AMQP_TLS_OTHER_CA_FILE must be set")
        let folder = (caFile as NSString).deletingLastPathComponent
        let certificates = try NIOSSLCertificate.fromPEMFile(folder + "/server.pem").map {
            NIOSSLCertificateSource.certificate($0)
        }
        let serverTLS = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: certificates,
                privateKey: .privateKey(try NIOSSLPrivateKey(file: folder + "/server-key.pem", format: .pem))))
        let server = try await ScriptedServer.start(tls: serverTLS) { _, _ in .answer(status: 200, body: "[]") }
        try await server.withAdapter(host: "localhost", tls: true, caFile: caFile) { adapter in
            let first = try await adapter.accounts(withEmail: NormalizedEmail("tls@example.com")!)
            let second = try await adapter.accounts(withEmail: NormalizedEmail("tls2@example.com")!)
            #expect(first.isEmpty && second.isEmpty)
            #expect(server.stats.connections == 1)
        }
        try await server.withAdapter(host: "localhost", tls: true, caFile: otherCA) { adapter in
            let error = await #expect(throws: CloudSiteError.self) {
                _ = try await adapter.accounts(withEmail: NormalizedEmail("tls@example.com")!)
            }
            #expect(error?.code == .unreachable)
            #expect(error?.message.contains("TLS") == true)
        }
        #expect(server.stats.requests == 2)
    }

    @Test("base URLs: scheme, host, port, IPv6 literal and path prefix; anything else is refused")
    func endpoints() throws {
        let plain = try #require(SiteEndpoint(baseURL: "http://127.0.0.1:8080"))
        #expect(plain == SiteEndpoint(host: "127.0.0.1", port: 8080, useTLS: false, pathPrefix: ""))
        #expect(plain.hostHeader == "127.0.0.1:8080" && plain.tlsServerName == nil)
        let cloud = try #require(SiteEndpoint(baseURL: "HTTPS://example.atlassian.net/"))
        #expect(cloud == SiteEndpoint(host: "example.atlassian.net", port: 443, useTLS: true, pathPrefix: ""))
        #expect(cloud.hostHeader == "example.atlassian.net" && cloud.tlsServerName == "example.atlassian.net")
        let prefixed = try #require(SiteEndpoint(baseURL: "https://proxy.example.com:8443/jira//"))
        #expect(
            prefixed.pathPrefix == "/jira" && prefixed.port == 8443 && prefixed.hostHeader == "proxy.example.com:8443")
        let six = try #require(SiteEndpoint(baseURL: "http://[::1]:9000"))
        #expect(six.host == "::1" && six.port == 9000 && six.hostHeader == "[::1]:9000" && six.tlsServerName == nil)
        for bad in [
            "ftp://h", "h:80", "http://", "http://:80", "http://h:0", "http://h:70000", "http://h:x",
            "http://user:pw@h", "http://[::1", "http://[::1]x",
        ] {
            #expect(SiteEndpoint(baseURL: bad) == nil, "\(bad)")
        }
    }

    @Test("an unusable base URL is a permanent invalid-request error, with no connection tried")
    func unusableURL() async throws {
        let configuration = AtlassianCloudConfiguration(
            baseURL: "ftp://example.com", userEmail: "ops@example.com", apiToken: "t0ken")
        try await AtlassianCloudSite.withSite(configuration: configuration) { adapter in
            let error = await #expect(throws: CloudSiteError.self) {
                _ = try await adapter.accounts(withEmail: NormalizedEmail("x@example.com")!)
            }
            #expect(error?.code == .invalidRequest)
            #expect(error?.isRetriable == false)
        }
    }
}

/// A loopback HTTP/1.1 server (SwiftNIO) that answers each request as its script says, given the
/// connection's number and the request's number on it (both from 1), and counts what it saw.
final class ScriptedServer: Sendable {
    enum Reply: Sendable {
        case answer(status: Int, body: String, delay: Duration = .zero)
        case closeWithoutAnswer
        case never
    }

    struct Stats: Sendable {
        var connections = 0
        var requests = 0
        var open = 0
        var peakOpen = 0
    }

    let port: Int
    private let channel: any Channel
    private let counters: NIOLockedValueBox<Stats>

    var stats: Stats { counters.withLockedValue { $0 } }

    private init(port: Int, channel: any Channel, counters: NIOLockedValueBox<Stats>) {
        self.port = port
        self.channel = channel
        self.counters = counters
    }

    static func start(
        tls: NIOSSLContext? = nil, script: @escaping @Sendable (_ connection: Int, _ request: Int) -> Reply
    ) async throws -> ScriptedServer {
        let counters = NIOLockedValueBox(Stats())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let number = counters.withLockedValue { stats -> Int in
                        stats.connections += 1
                        return stats.connections
                    }
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        ScriptedHandler(connection: number, counters: counters, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedServer(port: channel.localAddress?.port ?? 0, channel: channel, counters: counters)
    }

    /// Runs `body` with an adapter pointed at this server, then shuts both down.
    func withAdapter(
        host: String = "127.0.0.1", tls: Bool = false, caFile: String? = nil, maxConcurrentRequests: Int = 8,
        requestTimeout: Duration = .seconds(30), _ body: (AtlassianCloudSite) async throws -> Void
    ) async throws {
        var configuration = AtlassianCloudConfiguration(
            baseURL: "\(tls ? "https" : "http")://\(host):\(port)", userEmail: "ops@example.com", apiToken: "t0ken")
        configuration.maxConcurrentRequests = maxConcurrentRequests
        configuration.requestTimeout = requestTimeout
        configuration.connectTimeout = .seconds(10)
        configuration.caCertificateFile = caFile
        do {
            try await AtlassianCloudSite.withSite(configuration: configuration, body)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    deinit {
        channel.close(promise: nil)
    }
}

private final class ScriptedHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let connection: Int
    let counters: NIOLockedValueBox<ScriptedServer.Stats>
    let script: @Sendable (Int, Int) -> ScriptedServer.Reply
    private var requests = 0

    init(
        connection: Int, counters: NIOLockedValueBox<ScriptedServer.Stats>,
        script: @escaping @Sendable (Int, Int) -> ScriptedServer.Reply
    ) {
        self.connection = connection
        self.counters = counters
        self.script = script
    }

    func channelActive(context: ChannelHandlerContext) {
        counters.withLockedValue { stats in
            stats.open += 1
            stats.peakOpen = max(stats.peakOpen, stats.open)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        counters.withLockedValue { $0.open -= 1 }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        requests += 1
        counters.withLockedValue { $0.requests += 1 }
        switch script(connection, requests) {
        case .answer(let status, let text, let delay):
            let write = {
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(text.utf8.count))
                let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
            if delay == .zero {
                write()
            } else {
                context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { write() }
            }
        case .closeWithoutAnswer:
            context.close(promise: nil)
        case .never:
            break
        }
    }
}
