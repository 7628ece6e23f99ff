import Foundation
import Testing

/// Credentials reach `jsm-migrate` through the environment or files only, and it never prints
/// them back: not in an error about the URL that carried them, not in `--help`.
@Suite("jsm-migrate never echoes credentials")
struct CredentialEchoTests {
    /// A value no output could contain by chance.
    static let canary = "Canary-\(UInt32.random(in: 100_000...999_999))-secret"

    /// One line of standard error naming the cause, and not the canary anywhere.
    private func expectCleanError(
        _ run: CommandRun, naming cause: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(run.failedCleanly, "\(run.standardError)", sourceLocation: sourceLocation)
        #expect(run.standardError.contains(cause), "\(run.standardError)", sourceLocation: sourceLocation)
        #expect(!run.standardError.contains(Self.canary), "the error echoes the secret", sourceLocation: sourceLocation)
        #expect(
            !run.standardOutput.contains(Self.canary), "the output echoes the secret", sourceLocation: sourceLocation)
    }

    @Test("a password in AMQP_URL is not in the error when the broker is unreachable")
    func amqpURLFromEnvironment() throws {
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues"], environment: ["AMQP_URL": "amqp://jsm:\(Self.canary)@127.0.0.1:1/"])
        expectCleanError(run, naming: "127.0.0.1:1")
    }

    @Test("a malformed AMQP_URL is refused without printing its password")
    func malformedAMQPURL() throws {
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues"], environment: ["AMQP_URL": "amqp://jsm:\(Self.canary)@127.0.0.1:port/"])
        #expect(run.failedCleanly)
        #expect(!run.standardError.contains(Self.canary), "\(run.standardError)")
    }

    @Test("a password from --amqp-url-file is not in the error")
    func amqpURLFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-amqp-url-\(UUID())")
        try "amqp://jsm:\(Self.canary)@127.0.0.1:1/\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues", "--amqp-url-file", file.path], environment: ["AMQP_URL": ""])
        expectCleanError(run, naming: "127.0.0.1:1")
    }

    @Test("AMQP_PASSWORD beside a password-less --amqp-url is not in the error")
    func amqpPasswordVariable() throws {
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues", "--amqp-url", "amqp://jsm@127.0.0.1:1/"], environment: ["AMQP_PASSWORD": Self.canary])
        expectCleanError(run, naming: "127.0.0.1:1")
    }

    @Test("a wrong AMQP password is refused by the broker and not printed")
    func wrongAMQPPassword() throws {
        let url = try #require(ProcessInfo.processInfo.environment["AMQP_URL"], "AMQP_URL must be set")
        var components = try #require(URLComponents(string: url))
        components.password = Self.canary
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues"], environment: ["AMQP_URL": try #require(components.string)])
        expectCleanError(run, naming: "authenticationFailed")
    }

    @Test("POSTGRES_PASSWORD is not in the error when PostgreSQL is unreachable or refuses it")
    func postgresPassword() throws {
        let unreachable = try CommandRun.jsmMigrate(
            ["status", "--ledger", "postgres:jsm_never"],
            environment: ["POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1", "POSTGRES_PASSWORD": Self.canary])
        #expect(unreachable.failedCleanly, "\(unreachable.standardError)")
        #expect(!unreachable.standardError.contains(Self.canary), "\(unreachable.standardError)")
        let refused = try CommandRun.jsmMigrate(
            ["status", "--ledger", "postgres:jsm_never"], environment: ["POSTGRES_PASSWORD": Self.canary])
        #expect(refused.failedCleanly, "\(refused.standardError)")
        #expect(!refused.standardError.contains(Self.canary), "\(refused.standardError)")
        // A refused login is named as such, not as an unreachable server.
        #expect(refused.standardError.contains("login_refused"), "\(refused.standardError)")
        #expect(!unreachable.standardError.contains("login_refused"), "\(unreachable.standardError)")
    }

    @Test("JSM_SITE_TOKEN is not in the error when the site cannot be reached")
    func siteTokenVariable() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-token-echo-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = folder.appendingPathComponent("jira.sqlite").path
        let generated = try CommandRun.jsmMigrate([
            "generate-source", "--users", "10", "--seed", "1", "--sqlite", source,
        ])
        #expect(generated.status == 0, "\(generated.standardError)")
        // The source and the ledger open; the site's preflight is what fails, with the token in hand.
        let run = try CommandRun.jsmMigrate(
            [
                "start", "--migration", "m1", "--source", "sqlite:" + source, "--ledger",
                "sqlite:" + folder.appendingPathComponent("ledger.sqlite").path, "--site-url", "http://127.0.0.1:1",
                "--log-level", "debug",
            ], environment: ["JSM_SITE_TOKEN": Self.canary])
        expectCleanError(run, naming: "127.0.0.1:1 cannot be used")
    }

    @Test(
        "--help of every command prints no credential from the environment",
        arguments: [
            "start", "worker", "aggregator", "report", "verify", "failed", "status", "broker", "demo",
            "generate-source",
            "cloud-site",
        ])
    func help(command: String) throws {
        let run = try CommandRun.jsmMigrate(
            [command, "--help"],
            environment: [
                "AMQP_URL": "amqp://jsm:\(Self.canary)@127.0.0.1:5673/", "AMQP_PASSWORD": Self.canary,
                "POSTGRES_PASSWORD": Self.canary, "JSM_SITE_TOKEN": Self.canary,
            ])
        #expect(run.status == 0, "\(run.standardError)")
        #expect(run.standardOutput.contains("USAGE"), "\(run.standardOutput)")
        #expect(!(run.standardOutput + run.standardError).contains(Self.canary))
    }
}
