import ArgumentParser
import AsyncHTTPClient
import Foundation
import JSMCloud
import JSMDomain
import NIOCore
import NIOHTTP1

/// `site-benchmark`: drives account creations against a cloud site and prints creations per second
/// from three clients (a `poll(2)` socket loop that leaves the cores to the site, a raw
/// AsyncHTTPClient `HTTPClient` loop, and the REST adapter over its own NIO connection pool) and the
/// adapter's overhead per call against the `HTTPClient` loop.
///
/// The token comes from `JSM_SITE_TOKEN`, never the command line.
@main
struct SiteBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site-benchmark",
        abstract: "Measure cloud-site account creations per second and the REST adapter's overhead per call.")

    @Option(help: "The site's base URL.")
    var baseURL: String = "http://127.0.0.1:8080"

    @Option(help: "Customer creations per throughput run.")
    var count: Int = 100_000

    @Option(help: "Concurrent creators (and HTTP connections).")
    var concurrency: Int = 128

    @Option(help: "Sequential calls per latency run (adapter overhead per call).")
    var latencyCount: Int = 5_000

    @Option(help: "The site's process id, to report its CPU time per creation (Linux /proc).")
    var sitePid: Int?

    func validate() throws {
        guard count > 0, concurrency > 0, latencyCount > 0 else {
            throw ValidationError("counts and concurrency must be positive")
        }
    }

    func run() async throws {
        guard let token = ProcessInfo.processInfo.environment["JSM_SITE_TOKEN"], !token.isEmpty else {
            throw ValidationError("Set JSM_SITE_TOKEN to the site's API token.")
        }
        var configuration = AtlassianCloudConfiguration(
            baseURL: baseURL, userEmail: "bench@example.com", apiToken: token)
        configuration.maxConcurrentRequests = concurrency
        let runId = String(UUID().uuidString.prefix(8)).lowercased()
        let client = AtlassianCloudSite.makeHTTPClient(for: configuration)
        let raw = RawCreator(client: client, baseURL: configuration.baseURL, token: token)
        let adapter = AtlassianCloudSite(configuration: configuration)
        do {
            // Warm up connections and the site's caches before timing anything.
            _ = try await drive(count: min(2_000, count), concurrency: concurrency) { index in
                try await raw.create(email: "warm-\(runId)-\(index)@bench.example.com")
            }

            guard let sockets = SocketLoad(baseURL: configuration.baseURL, authorization: raw.authorization) else {
                throw ValidationError("--base-url must look like http://HOST:PORT")
            }
            let cpu = CPUClock(sitePid: sitePid)
            let socketThroughput = try await cpu.measure(calls: count) {
                let outcome = try await sockets.run(
                    count: count, connections: concurrency, emailPrefix: "socket-\(runId)")
                guard outcome.created == count else {
                    throw ValidationError("the socket loop created \(outcome.created) of \(count)")
                }
            }
            let rawThroughput = try await cpu.measure(calls: count) {
                _ = try await drive(count: count, concurrency: concurrency) { index in
                    try await raw.create(email: "raw-\(runId)-\(index)@bench.example.com")
                }
            }
            let adapterThroughput = try await cpu.measure(calls: count) {
                _ = try await drive(count: count, concurrency: concurrency) { index in
                    guard let email = NormalizedEmail("adapter-\(runId)-\(index)@bench.example.com") else { return }
                    _ = try await adapter.createCustomer(email: email, displayName: "Bench \(index)")
                }
            }
            let rawLatency = try await drive(count: latencyCount, concurrency: 1) { index in
                try await raw.create(email: "rawseq-\(runId)-\(index)@bench.example.com")
            }
            let adapterLatency = try await drive(count: latencyCount, concurrency: 1) { index in
                guard let email = NormalizedEmail("adapterseq-\(runId)-\(index)@bench.example.com") else { return }
                _ = try await adapter.createCustomer(email: email, displayName: "Bench \(index)")
            }
            let metrics = adapter.metrics.snapshot

            print("creations (customer), concurrency \(concurrency), \(count) each (CPU per creation):")
            for (name, run) in [
                ("socket loop (poll)  ", socketThroughput), ("raw HTTPClient loop ", rawThroughput),
                ("REST adapter        ", adapterThroughput),
            ] {
                print(
                    "  \(name): " + String(format: "%9.0f creations/s  (%.1f s)", run.rate, run.seconds) + run.cpuText)
            }
            print("sequential latency, \(latencyCount) calls each:")
            print(String(format: "  raw HTTPClient loop : %7.1f us/call", rawLatency.microsecondsPerCall))
            print(String(format: "  REST adapter        : %7.1f us/call", adapterLatency.microsecondsPerCall))
            print(
                String(
                    format:
                        "  adapter overhead    : %7.1f us/call (sequential), %.1f us/call of wall time at concurrency %d",
                    adapterLatency.microsecondsPerCall - rawLatency.microsecondsPerCall,
                    (adapterThroughput.seconds - rawThroughput.seconds) / Double(count) * 1e6, concurrency))
            print(
                "adapter counters: created \(metrics.accountsCreated), linked \(metrics.accountsLinked), "
                    + "throttled \(metrics.throttledResponses), failures \(metrics.failures)")
            await adapter.shutdown()
            try await client.shutdown()
        } catch {
            await adapter.shutdown()
            try? await client.shutdown()
            throw error
        }
    }

    struct Run {
        let calls: Int
        let seconds: Double
        /// CPU seconds this process spent, when measured.
        var clientCPU: Double?
        /// CPU seconds the site's process spent, when its pid was given.
        var siteCPU: Double?

        init(calls: Int, seconds: Double, clientCPU: Double? = nil, siteCPU: Double? = nil) {
            self.calls = calls
            self.seconds = seconds
            self.clientCPU = clientCPU
            self.siteCPU = siteCPU
        }

        var rate: Double { Double(calls) / seconds }
        var microsecondsPerCall: Double { seconds / Double(calls) * 1e6 }

        /// `, client N us, site M us` per call, for what was measured.
        var cpuText: String {
            var parts: [String] = []
            if let clientCPU { parts.append(String(format: "client %.0f us", clientCPU / Double(calls) * 1e6)) }
            if let siteCPU { parts.append(String(format: "site %.0f us", siteCPU / Double(calls) * 1e6)) }
            return parts.isEmpty ? "" : "  CPU: " + parts.joined(separator: ", ")
        }
    }

    /// Runs `count` calls over `concurrency` creators, each taking every `concurrency`-th index.
    private func drive(count: Int, concurrency: Int, _ call: @escaping @Sendable (Int) async throws -> Void)
        async throws -> Run
    {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<min(concurrency, count) {
                group.addTask {
                    for index in stride(from: worker, to: count, by: concurrency) { try await call(index) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        return Run(
            calls: count, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

/// The baseline: the same customer creation as the adapter's, with a prebuilt header and a body
/// built by hand, checking only the status.
struct RawCreator: Sendable {
    let client: HTTPClient
    let url: String
    let authorization: String

    init(client: HTTPClient, baseURL: String, token: String) {
        self.client = client
        self.url = baseURL + "/rest/servicedeskapi/customer?strictConflictStatusCode=true"
        self.authorization = "Basic " + Data("bench@example.com:\(token)".utf8).base64EncodedString()
    }

    func create(email: String) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Authorization", value: authorization)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"email":"\#(email)","displayName":"Bench"}"#))
        let response = try await client.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created else { throw ValidationError("raw creation answered \(response.status)") }
    }
}

/// CPU time of this process and, when its pid is known, of the site: the figures that say where a
/// creation's cost goes when client and site share the cores (wall time alone hides it).
struct CPUClock: Sendable {
    let sitePid: Int?

    /// Runs `body` and returns its wall time with both processes' CPU time over it.
    func measure(calls: Int, _ body: () async throws -> Void) async throws -> SiteBenchmark.Run {
        let clientBefore = Self.processSeconds(pid: nil)
        let siteBefore = sitePid.flatMap { Self.processSeconds(pid: $0) }
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        let clientAfter = Self.processSeconds(pid: nil)
        let siteAfter = sitePid.flatMap { Self.processSeconds(pid: $0) }
        return SiteBenchmark.Run(
            calls: calls,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            clientCPU: clientBefore.flatMap { before in clientAfter.map { $0 - before } },
            siteCPU: siteBefore.flatMap { before in siteAfter.map { $0 - before } })
    }

    /// User plus system seconds of a process from `/proc/<pid>/stat` (`self` when `pid` is nil);
    /// `nil` where there is no `/proc`.
    static func processSeconds(pid: Int?) -> Double? {
        let path = "/proc/\(pid.map(String.init) ?? "self")/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let afterName = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3, utime 14 and stime 15 (1-based).
        let fields = text[text.index(after: afterName)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ticks > 0 ? (user + system) / ticks : nil
    }
}
