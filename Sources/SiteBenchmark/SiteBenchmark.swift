import ArgumentParser
import AsyncHTTPClient
import Foundation
import JSMCloud
import JSMDomain
import NIOCore
import NIOHTTP1

/// `site-benchmark`: drives account creations against a cloud site and prints creations per second
/// and the adapter's overhead per call (adapter against a raw `HTTPClient` loop in the same run).
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
        let adapter = AtlassianCloudSite(configuration: configuration, httpClient: client)
        do {
            // Warm up connections and the site's caches before timing anything.
            _ = try await drive(count: min(2_000, count), concurrency: concurrency) { index in
                try await raw.create(email: "warm-\(runId)-\(index)@bench.example.com")
            }

            let rawThroughput = try await drive(count: count, concurrency: concurrency) { index in
                try await raw.create(email: "raw-\(runId)-\(index)@bench.example.com")
            }
            let adapterThroughput = try await drive(count: count, concurrency: concurrency) { index in
                guard let email = NormalizedEmail("adapter-\(runId)-\(index)@bench.example.com") else { return }
                _ = try await adapter.createCustomer(email: email, displayName: "Bench \(index)")
            }
            let rawLatency = try await drive(count: latencyCount, concurrency: 1) { index in
                try await raw.create(email: "rawseq-\(runId)-\(index)@bench.example.com")
            }
            let adapterLatency = try await drive(count: latencyCount, concurrency: 1) { index in
                guard let email = NormalizedEmail("adapterseq-\(runId)-\(index)@bench.example.com") else { return }
                _ = try await adapter.createCustomer(email: email, displayName: "Bench \(index)")
            }
            let metrics = adapter.metrics.snapshot

            print("creations (customer), concurrency \(concurrency), \(count) each:")
            print(
                String(
                    format: "  raw HTTPClient loop : %9.0f creations/s  (%.1f s)", rawThroughput.rate,
                    rawThroughput.seconds))
            print(
                String(
                    format: "  REST adapter        : %9.0f creations/s  (%.1f s)", adapterThroughput.rate,
                    adapterThroughput.seconds))
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
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    struct Run {
        let calls: Int
        let seconds: Double
        var rate: Double { Double(calls) / seconds }
        var microsecondsPerCall: Double { seconds / Double(calls) * 1e6 }
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
