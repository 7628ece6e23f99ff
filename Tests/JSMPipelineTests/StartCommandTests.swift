import AsyncHTTPClient
import Foundation
import JSMCloudSite
import JSMLocalRun
import NIOCore
import Testing

/// `jsm-migrate start` refusing bad input the way an operator meets it: one clear error line,
/// a non-zero exit, and nothing published on the broker.
@Suite("jsm-migrate start refuses bad input and publishes nothing")
struct StartCommandTests {
    @Test("unknown project, contradicting options, a source that is not Jira, a refused token: one error each")
    func badInput() async throws {
        let vhost = "jsm-start-\(UInt32.random(in: 0...UInt32.max))"
        let amqpURL = try await EndToEnd.createVhost(vhost)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(vhost)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            let source = folder.appendingPathComponent("jira.sqlite").path
            let sample = try await SampleSource.generate(users: 300, seed: 3, sqlitePath: source)
            let notJira = folder.appendingPathComponent("not-jira.sqlite").path
            _ = try await SampleSource.generate(users: 1, seed: 1, sqlitePath: notJira)
            try dropTable("cwd_user", in: notJira)
            let token = LocalSite.randomToken()
            let tokenFile = folder.appendingPathComponent("token").path
            let wrongTokenFile = folder.appendingPathComponent("wrong-token").path
            try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            try "not-the-token".write(toFile: wrongTokenFile, atomically: true, encoding: .utf8)
            try await LocalSite.run(
                sqlitePath: folder.appendingPathComponent("site.sqlite").path, seed: sample.siteAccounts, token: token
            ) { site in
                let ledger = "sqlite:" + folder.appendingPathComponent("ledger.sqlite").path
                func start(_ extra: [String], source path: String, token file: String) async throws -> (
                    status: Int32, error: String
                ) {
                    try await run(
                        [
                            "start", "--migration", "m1", "--source", "sqlite:" + path, "--ledger", ledger,
                            "--site-url", site.url, "--site-token-file", file,
                        ] + extra, environment: ["AMQP_URL": amqpURL])
                }
                let unknown = try await start(
                    ["--project", "SD1", "--project", "NOPE"], source: source, token: tokenFile)
                #expect(unknown.status == 1)
                #expect(unknown.error.contains("unknown project key NOPE"))
                let customersNone = try await start(
                    ["--project", "SD1", "--customers", "none"], source: source, token: tokenFile)
                #expect(customersNone.status == 1)
                #expect(customersNone.error.contains("--customers none cannot be used"))
                #expect(customersNone.error.contains("SD1"))
                let requestless = try await start(["--include-requestless"], source: source, token: tokenFile)
                #expect(requestless.status != 0)
                #expect(requestless.error.contains("--include-requestless only applies with --customers all"))
                let notJiraRun = try await start(["--project", "SD1"], source: notJira, token: tokenFile)
                #expect(notJiraRun.status == 1)
                #expect(notJiraRun.error.contains("cwd_user"))
                let refused = try await start(["--project", "SD1"], source: source, token: wrongTokenFile)
                #expect(refused.status == 1)
                #expect(refused.error.contains("refused the API token"))
                #expect(!refused.error.contains(token))
                for result in [unknown, customersNone, requestless, notJiraRun, refused] {
                    #expect(result.error.split(separator: "\n").filter { $0.hasPrefix("Error") }.count == 1)
                }
            }
            #expect(try await publishedMessages(vhost) == 0)
            try await EndToEnd.deleteVhost(vhost)
        } catch {
            try? await EndToEnd.deleteVhost(vhost)
            throw error
        }
    }

    @Test("Ctrl-C ends a dry run and removes its scratch files; a killed dry run's are removed by the next")
    func interruptedDryRun() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-dry-stop-\(UUID().uuidString)")
        let scratch = folder.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = folder.appendingPathComponent("jira.sqlite").path
        // Large enough that the dry run is still reading when the signal arrives.
        let sample = try await SampleSource.generate(users: 20_000, seed: 5, sqlitePath: source)
        let token = LocalSite.randomToken()
        let tokenFile = folder.appendingPathComponent("token").path
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        func scratchDirectories() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix("jsm-dry-run-") }
        }
        try await LocalSite.run(
            sqlitePath: folder.appendingPathComponent("site.sqlite").path, seed: sample.siteAccounts, token: token
        ) { site in
            let arguments = [
                "start", "--dry-run", "--migration", "m1", "--source", "sqlite:" + source,
                "--ledger", "sqlite:" + folder.appendingPathComponent("ledger.sqlite").path,
                "--site-url", site.url, "--site-token-file", tokenFile,
                "--users", "all", "--customers", "all", "--include-requestless",
            ]
            // Sends `signal` once the dry run has made its scratch directory, while it still runs.
            func signalOnceReading(_ signal: Int32) -> (Process) async throws -> Void {
                { process in
                    for _ in 0..<6_000 where process.isRunning {
                        if try !scratchDirectories().isEmpty { break }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    try #require(process.isRunning, "the dry run ended before it could be signalled")
                    try #require(try scratchDirectories().count == 1)
                    kill(process.processIdentifier, signal)
                }
            }
            let environment = ["TMPDIR": scratch.path]
            let interrupted = try await EndToEnd.runCommand(
                arguments, environment: environment, limit: .seconds(120), whileRunning: signalOnceReading(SIGINT))
            #expect(interrupted.status == 128 + SIGINT)
            #expect(interrupted.error.contains("dry run of m1 interrupted by SIGINT"))
            #expect(!interrupted.output.contains("total"), "an interrupted dry run prints no totals")
            #expect(try scratchDirectories().isEmpty)

            let killed = try await EndToEnd.runCommand(
                arguments, environment: environment, limit: .seconds(120), whileRunning: signalOnceReading(SIGKILL))
            #expect(killed.status == SIGKILL)
            #expect(try scratchDirectories().count == 1, "SIGKILL leaves the scratch directory behind")

            let complete = try await EndToEnd.runCommand(arguments, environment: environment, limit: .seconds(300))
            #expect(complete.status == 0, "\(complete.error)")
            #expect(complete.output.contains("total"))
            #expect(complete.error.contains("removed the scratch directories of dry runs"))
            #expect(try scratchDirectories().isEmpty)
        }
    }

    /// Runs the built binary with its output in files (a full pipe never blocks it), bounded to 60 s.
    private func run(_ arguments: [String], environment: [String: String]) async throws -> (
        status: Int32, error: String
    ) {
        let process = Process()
        process.executableURL = EndToEnd.executable
        process.arguments = arguments
        process.environment = EndToEnd.environment.merging(environment) { _, new in new }
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("start-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let handle = try FileHandle(forWritingTo: errorFile)
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<1_200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, try String(contentsOf: errorFile, encoding: .utf8))
    }

    private func dropTable(_ table: String, in path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DROP TABLE \(table)'); c.commit()",
            path,
        ]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessFailure("could not drop \(table) from \(path)") }
    }

    /// Messages in every queue of the vhost, from the management API (0 when no queue exists).
    private func publishedMessages(_ vhost: String) async throws -> Int {
        let environment = EndToEnd.environment
        guard let base = environment["JSM_RABBITMQ_MGMT_URL"], let user = environment["AMQP_USER"],
            let password = environment["AMQP_PASSWORD"]
        else { throw HarnessFailure("the RabbitMQ management settings are not set") }
        var request = HTTPClientRequest(url: base + "/api/queues/\(vhost)")
        request.headers.add(
            name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 8 << 20)
        struct Queue: Decodable { let messages: Int? }
        return try JSONDecoder().decode([Queue].self, from: Data(buffer: body)).reduce(0) { $0 + ($1.messages ?? 0) }
    }
}
