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
            let port = try freeLoopbackPort()
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

    /// A port nothing listens on right now (the kernel's pick for port 0 on loopback).
    private func freeLoopbackPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessFailure("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw HarnessFailure("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw HarnessFailure("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
