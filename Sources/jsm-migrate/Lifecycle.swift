import ArgumentParser
import JSMCloud
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--shutdown-timeout`: how long SIGTERM or SIGINT waits for in-flight work.
struct ShutdownOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Seconds a SIGTERM or SIGINT waits for in-flight messages to finish before returning them to their queue.",
            valueName: "seconds"))
    var shutdownTimeout = 30

    func validate() throws {
        guard (1...3_600).contains(shutdownTimeout) else {
            throw ValidationError("--shutdown-timeout must be 1...3600 seconds, not \(shutdownTimeout)")
        }
    }
}

/// A long-running process's main loop as a service; what it returns is kept for the caller.
private final class MainService<Result: Sendable>: Service, CustomStringConvertible {
    let description: String
    private let body: @Sendable () async throws -> Result
    private let outcome = Mutex<Result?>(nil)

    init(_ name: String, _ body: @escaping @Sendable () async throws -> Result) {
        self.description = name
        self.body = body
    }

    func run() async throws {
        let result = try await body()
        outcome.withLock { $0 = result }
    }

    var result: Result? { outcome.withLock { $0 } }
}

/// Runs a worker's or an aggregator's main loop under swift-service-lifecycle, beside the metrics
/// endpoint when one is configured.
///
/// SIGTERM and SIGINT start a graceful shutdown: the main loop stops consuming and finishes its
/// in-flight messages, then the metrics endpoint stops (services stop in reverse order). Past
/// `--shutdown-timeout` the group cancels instead, and unfinished messages go back to their
/// queue. Returns the main loop's result, or nil when a signal ended it before it returned one.
enum ProcessLifecycle {
    static func run<Result: Sendable>(
        _ name: String, metrics: MetricsOptions, siteMetrics: CloudSiteMetrics?, shutdown: ShutdownOptions,
        logger: Logger, _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result? {
        let main = MainService(name, body)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let endpoint = metrics.service(siteMetrics: siteMetrics, logger: logger) {
            services.append(.init(service: endpoint, serviceName: "metrics endpoint"))
        }
        services.append(.init(service: main, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: name))
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(shutdown.shutdownTimeout)
        try await ServiceGroup(configuration: configuration).run()
        return main.result
    }
}

/// A one-shot command's work that SIGINT (Ctrl-C) or SIGTERM interrupts cleanly: the first signal
/// cancels the work, which stops and removes what it made (the dry run's scratch files), and the
/// command then fails with ``Interrupted``; a second signal ends the process at once.
enum Interruptible {
    /// The signal that interrupted the work; the exit status is 128 plus its number, as a shell's.
    struct Interrupted: Error {
        let signal: UnixSignal

        var name: String { signal.description.uppercased() }
        var exitCode: ExitCode { ExitCode(128 + signal.rawValue) }
    }

    /// Runs `body`; `stopping` says, in the log line of the first signal, what the work does before
    /// it ends and what a second signal would leave behind.
    static func run<T: Sendable>(
        logger: Logger, stopping: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let work = Task { try await body() }
        let caught = Mutex<Interrupted?>(nil)
        let watcher = Task {
            for await signal in signals {
                let interrupted = Interrupted(signal: signal)
                let isFirst = caught.withLock { earlier in
                    guard earlier == nil else { return false }
                    earlier = interrupted
                    return true
                }
                guard isFirst else {
                    logger.warning("second \(interrupted.name): exiting without cleaning up")
                    exit(interrupted.exitCode.rawValue)
                }
                logger.notice("\(interrupted.name): \(stopping)")
                work.cancel()
            }
        }
        defer { watcher.cancel() }
        do {
            return try await work.value
        } catch {
            if let interrupted = caught.withLock({ $0 }) { throw interrupted }
            throw error
        }
    }
}
