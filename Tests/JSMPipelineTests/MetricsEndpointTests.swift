import AsyncHTTPClient
import Foundation
import JSMLocalRun
import JSMPipeline
import NIOCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    @Test("a worker's /metrics serves the documented names with the migration's counts, /health answers")
    func metricsEndpoint() async throws {
        try await EndToEnd.withWorld(workers: 0) { world, connection in
            let port = try EndToEnd.freeLoopbackPort()
            let worker = try world.spawnWorkers(
                1, executable: EndToEnd.executable, namePrefix: "metrics",
                extraArguments: ["--metrics-port", "\(port)"])
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let (_, verdict) = try await world.migrate(
                world.request("metrics", projects: projects, batchSize: 200), connection: connection)
            #expect(verdict.reconciled)
            let metrics = try await get("http://127.0.0.1:\(port)/metrics")
            let health = try await get("http://127.0.0.1:\(port)/health")
            await worker.terminate()
            #expect(health.status == 200 && health.body == "ok\n")
            #expect(metrics.status == 200)
            let workerNames = PipelineMetrics.all.filter {
                $0 != PipelineMetrics.replies && $0 != PipelineMetrics.migrationsFinished
            }
            for name in workerNames {
                #expect(metrics.body.contains(name), "\(name) is not served")
            }
            // The counts are the migration's: every identity batch completed by this one worker.
            let completed = metrics.body.split(separator: "\n").first {
                $0.hasPrefix(PipelineMetrics.batches) && $0.contains("method=\"MigrateIdentities\"")
                    && $0.contains("outcome=\"completed\"")
            }
            let value = completed.flatMap { Double($0.split(separator: " ").last ?? "") }
            #expect(value.map(Int.init) == verdict.batchStates[.done], "\(String(describing: completed))")
        }
    }

    private func get(_ url: String) async throws -> (status: UInt, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 4 << 20)
        return (response.status.code, String(buffer: body))
    }
}
