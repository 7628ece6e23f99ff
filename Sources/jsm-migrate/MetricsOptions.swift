import ArgumentParser
import Hummingbird
import JSMCloud
import JSMPipeline
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// `--metrics-port` / `--metrics-host`: a Prometheus endpoint (`GET /metrics`, text format) and a
/// liveness probe (`GET /health`) beside a worker or an aggregator. Off unless a port is given.
struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics at /metrics (and /health) on this port; off when not given.")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint listens on (0.0.0.0 in a container).")
    var metricsHost = "127.0.0.1"

    func validate() throws {
        if let port = metricsPort, !(1...65_535).contains(port) {
            throw ValidationError("--metrics-port must be 1...65535, not \(port)")
        }
    }

    /// The endpoint as a service for the process's service group (nil when no port is given); the
    /// site adapter's counters, if any, are read at each scrape.
    func service(siteMetrics: CloudSiteMetrics?, logger: Logger) -> (any Service)? {
        guard let port = metricsPort else { return nil }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let site = SiteCounterExport(metrics: siteMetrics)
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            site.export()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("health") { _, _ -> String in "ok\n" }
        logger.notice("metrics endpoint", metadata: ["address": "http://\(metricsHost):\(port)/metrics"])
        return Application(
            router: router,
            configuration: .init(address: .hostname(metricsHost, port: port), serverName: "jsm-migrate metrics"),
            logger: logger)
    }
}

/// Turns the adapter's running counters into metric increments at each scrape (the adapter
/// keeps plain counters so that it does not depend on a metrics backend).
private final class SiteCounterExport: Sendable {
    let metrics: CloudSiteMetrics?
    /// What the previous scrape read (zeros at first).
    private let last = Mutex(CloudSiteMetrics().snapshot)

    init(metrics: CloudSiteMetrics?) { self.metrics = metrics }

    func export() {
        guard let now = metrics?.snapshot else { return }
        let before = last.withLock { previous in
            defer { previous = now }
            return previous
        }
        Counter(label: PipelineMetrics.siteRequests).increment(by: Int64(max(0, now.requests - before.requests)))
        Counter(label: PipelineMetrics.siteThrottled).increment(
            by: Int64(max(0, now.throttledResponses - before.throttledResponses)))
        Counter(label: PipelineMetrics.siteFailures, dimensions: [("kind", "retriable")]).increment(
            by: Int64(max(0, now.retriableFailures - before.retriableFailures)))
        Counter(label: PipelineMetrics.siteFailures, dimensions: [("kind", "permanent")]).increment(
            by: Int64(max(0, now.permanentFailures - before.permanentFailures)))
    }
}
