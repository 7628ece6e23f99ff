import Foundation
import Testing

/// Runs the built `jsm-migrate` the way an operator does and returns what it printed.
struct CommandRun {
    let status: Int32
    let standardOutput: String
    let standardError: String

    /// The binary sits beside the test bundle in the build folder; the test target depends on it.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("jsm-migrate")
    }

    static func jsmMigrate(_ arguments: [String], environment overrides: [String: String] = [:]) throws -> CommandRun {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in overrides { environment[key] = value }
        process.environment = environment
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Bounded: a hang is a failure, not a stuck suite.
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return CommandRun(
            status: process.terminationStatus,
            standardOutput: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            standardError: String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    /// Non-empty lines of standard error.
    var errorLines: [Substring] { standardError.split(separator: "\n").filter { !$0.isEmpty } }

    /// Exited normally with a non-zero code (not killed by a signal, which is a crash or a hang).
    var failedCleanly: Bool { status != 0 && status < 128 }
}

/// Bad broker input gets one clear error line naming the cause and a non-zero exit, never a crash or a hang.
@Suite("jsm-migrate broker errors", .serialized)
struct CLIErrorTests {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    @Test("an unreachable broker")
    func unreachable() throws {
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues"], environment: ["AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"])
        #expect(run.failedCleanly)
        #expect(run.errorLines.count == 1, "\(run.standardError)")
        #expect(run.standardError.contains("unreachable") && run.standardError.contains("127.0.0.1:1"))
    }

    @Test("wrong credentials, without echoing the password")
    func wrongCredentials() throws {
        let url = try #require(Self.environment["AMQP_URL"], "AMQP_URL must be set by scripts/services.sh")
        var components = try #require(URLComponents(string: url))
        components.password = "wrong-secret-value"
        let run = try CommandRun.jsmMigrate(["broker", "queues"], environment: ["AMQP_URL": components.string!])
        #expect(run.failedCleanly)
        #expect(run.errorLines.count == 1, "\(run.standardError)")
        #expect(run.standardError.contains("authenticationFailed"))
        #expect(!run.standardError.contains("wrong-secret-value"))
    }

    @Test("a TLS failure: the broker's certificate is not signed by the given CA")
    func tlsFailure() throws {
        let url = try #require(Self.environment["AMQPS_URL"], "AMQPS_URL must be set by scripts/services.sh")
        let otherCA = try #require(Self.environment["AMQP_TLS_OTHER_CA_FILE"])
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues", "--amqp-ca-file", otherCA], environment: ["AMQP_URL": url])
        #expect(run.failedCleanly)
        #expect(run.errorLines.count == 1, "\(run.standardError)")
        #expect(run.standardError.contains("tlsFailed"))
    }

    @Test("a queue redeclared with conflicting arguments")
    func conflictingRedeclare() throws {
        let declared = try CommandRun.jsmMigrate(["broker", "declare"])
        #expect(declared.status == 0, "\(declared.standardError)")
        let run = try CommandRun.jsmMigrate(["broker", "declare", "--delivery-limit", "7"])
        #expect(run.failedCleanly)
        #expect(run.errorLines.count == 1, "\(run.standardError)")
        #expect(run.standardError.contains("406") && run.standardError.contains("jsm.work."))
    }

    @Test("a password on the command line is refused before anything connects")
    func passwordOnCommandLine() throws {
        let run = try CommandRun.jsmMigrate(["broker", "queues", "--amqp-url", "amqp://jsm:secret@127.0.0.1:5673/"])
        #expect(run.failedCleanly)
        #expect(run.standardError.contains("must not contain a password"))
        #expect(!run.standardError.contains("secret@"))
    }

    @Test("the declared topology answers with every queue, and twice in a row")
    func declareIsIdempotent() throws {
        for _ in 0..<2 {
            let run = try CommandRun.jsmMigrate(["broker", "declare"])
            #expect(run.status == 0, "\(run.standardError)")
        }
        let queues = try CommandRun.jsmMigrate(["broker", "queues"])
        #expect(queues.status == 0, "\(queues.standardError)")
        for name in [
            "jsm.work.MigrateIdentities", "jsm.work.ExpandProject", "jsm.results", "jsm.retry.5s", "jsm.parked",
        ] {
            #expect(queues.standardOutput.contains(name))
        }
    }
}
