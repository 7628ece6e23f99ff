import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Settings of the local cloud site.
public struct LocalCloudSiteConfiguration: Sendable, CustomStringConvertible {
    /// The address to listen on; loopback by default, since the site is for tests, demos and benchmarks.
    public var host: String = "127.0.0.1"
    /// The port; 0 picks a free one (reported through `onServerRunning`).
    public var port: Int = 8080
    /// The API token every request must present (basic auth password); never logged.
    public var apiToken: String
    /// Requests per second across the site before it answers 429; `nil` for no limit.
    public var requestsPerSecond: Double?
    /// The most requests admitted at once after a quiet period; `nil` for a tenth of a second's worth.
    public var rateLimitBurst: Double?
    /// The most accounts one group commit writes.
    public var maxBatch: Int = 500
    /// The most creations waiting for a group commit before the site answers 503.
    public var queueCapacity: Int = 20_000
    /// The largest request body read (Atlassian-sized; a larger one gets 413).
    public var maxBodyBytes: Int = 2 << 20

    /// A site on 127.0.0.1:8080 with this token and no rate limit.
    public init(apiToken: String) {
        self.apiToken = apiToken
    }

    /// The settings, without the token.
    public var description: String {
        "LocalCloudSiteConfiguration(host: \(host), port: \(port), requestsPerSecond: "
            + "\(requestsPerSecond.map { String($0) } ?? "unlimited"), maxBatch: \(maxBatch), queueCapacity: \(queueCapacity))"
    }
}

/// `jsm-migrate cloud-site`: a real HTTP server with the Atlassian Cloud endpoints the workers
/// use, over its own SQLite or PostgreSQL store.
///
/// It never sends notifications or invitations: it has no mail or messaging of any kind.
public enum LocalCloudSite {
    /// Runs a site in this process (demo, tests, benchmarks): waits until it listens, runs `body`
    /// with the port, then stops it the way SIGTERM does, with a graceful shutdown of its services.
    public static func run<T: Sendable>(
        configuration: LocalCloudSiteConfiguration, store: any AccountStore, seed: [NewSiteAccount] = [],
        logger: Logger, _ body: (_ port: Int) async throws -> T
    ) async throws -> T {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let application = makeApplication(
            configuration: configuration, store: store, seed: seed, logger: logger,
            onServerRunning: { port in continuation.yield(port) })
        let serviceGroup = ServiceGroup(services: [application], gracefulShutdownSignals: [], logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                try await serviceGroup.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await group.waitForAll()
                throw SiteStartError(message: "the local cloud site stopped before it listened")
            }
            do {
                let result = try await body(port)
                await serviceGroup.triggerGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    /// The application: the store and the group-commit writer run as its services (stopped after
    /// the server on graceful shutdown, so in-flight creations finish), the tables are prepared
    /// and `seed` accounts inserted before the server accepts requests.
    public static func makeApplication(
        configuration: LocalCloudSiteConfiguration,
        store: any AccountStore,
        seed: [NewSiteAccount] = [],
        logger: Logger,
        onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let writer = AccountWriter(
            store: store, maxBatch: configuration.maxBatch, queueCapacity: configuration.queueCapacity, logger: logger)
        let requests = RequestCounter()
        let burst = BurstInjector()
        let routes = SiteRoutes(
            store: store, writer: writer, maxBodyBytes: configuration.maxBodyBytes, requests: requests,
            faults: FaultInjector(), burst: burst)
        let router = Router()
        router.add(middleware: SiteErrorMiddleware(logger: logger))
        router.add(middleware: TokenAuthenticationMiddleware(token: configuration.apiToken))

        let atlassian = router.group("rest")
        atlassian.add(middleware: RequestCountingMiddleware(counter: requests))
        atlassian.add(middleware: BurstFaultMiddleware(burst: burst))
        if let rate = configuration.requestsPerSecond {
            atlassian.add(
                middleware: RateLimitMiddleware(limiter: RateLimiter(rate: rate, burst: configuration.rateLimitBurst)))
        }
        atlassian.post("servicedeskapi/customer", use: routes.createCustomer)
        atlassian.get("api/3/user/search", use: routes.searchUsers)
        atlassian.get("api/3/user", use: routes.user)
        atlassian.get("api/3/user/bulk", use: routes.bulkUsers)
        atlassian.post("api/3/user", use: routes.createUser)
        atlassian.post("api/3/group", use: routes.createGroup)
        atlassian.delete("api/3/group", use: routes.deleteGroup)
        atlassian.get("api/3/group/bulk", use: routes.findGroups)
        atlassian.get("api/3/group/member", use: routes.groupMembers)
        atlassian.post("api/3/group/user", use: routes.addGroupMember)

        let local = router.group("_local/v1")
        local.get("counts", use: routes.counts)
        local.get("accounts", use: routes.accounts)
        local.post("faults", use: routes.injectFaults)

        var application = Application(
            router: router,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "jsm-migrate cloud-site"),
            services: [store, writer],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger)
        application.beforeServerStarts {
            try await store.prepare()
            var created = 0
            for start in stride(from: 0, to: seed.count, by: max(1, configuration.maxBatch)) {
                let batch = Array(seed[start..<min(start + configuration.maxBatch, seed.count)])
                let results = try await store.insertAccounts(batch)
                created += results.filter { if case .created = $0 { return true } else { return false } }.count
            }
            if !seed.isEmpty {
                logger.info("seeded accounts", metadata: ["given": "\(seed.count)", "created": "\(created)"])
            }
            logger.info("cloud site ready", metadata: ["configuration": "\(configuration)"])
        }
        return application
    }
}

/// The in-process site ended before it listened (its cause is in the log).
public struct SiteStartError: Error, Sendable, CustomStringConvertible {
    /// What happened.
    public let message: String
    /// The message.
    public var description: String { message }
}
