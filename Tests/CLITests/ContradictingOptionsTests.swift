import Foundation
import Testing

/// Options that contradict each other are refused by `jsm-migrate` before it reads a database or
/// connects to anything: one error naming the options, a usage exit code, never a crash.
@Suite("jsm-migrate refuses contradicting options")
struct ContradictingOptionsTests {
    /// Arguments every `start` below needs; none of the paths exist, because nothing may be opened.
    static let start = [
        "start", "--migration", "m1", "--source", "sqlite:/nonexistent/jsm-corpus/jira.sqlite", "--ledger",
        "sqlite:/nonexistent/jsm-corpus/ledger.sqlite", "--site-url", "http://127.0.0.1:1",
    ]

    @Test(
        "each contradiction gets one error naming it",
        arguments: [
            (["--group-membership"], "--group-membership needs --groups"),
            (
                ["--include-requestless", "--customers", "related"],
                "--include-requestless only applies with --customers all"
            ),
            (["--batch-size", "0"], "--batch-size must be 1...10000"),
            (["--batch-size", "10001"], "--batch-size must be 1...10000"),
            (["--invalid-email", "ignore"], "--invalid-email"),
            (["--duplicate-email", "keep-both"], "--duplicate-email"),
            (["--customers", "some"], "--customers"),
        ] as [([String], String)])
    func startContradictions(_ extra: [String], _ message: String) throws {
        let run = try CommandRun.jsmMigrate(Self.start + extra, environment: ["JSM_SITE_TOKEN": "t"])
        #expect(run.failedCleanly, "\(run.standardError)")
        #expect(run.standardError.contains(message), "\(run.standardError)")
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/jsm-corpus"))
    }

    @Test("a CA file for a plain amqp:// broker is refused")
    func caFileWithoutTLS() throws {
        let run = try CommandRun.jsmMigrate(
            ["broker", "queues", "--amqp-ca-file", "/nonexistent/ca.pem"],
            environment: ["AMQP_URL": "amqp://jsm@127.0.0.1:1/"])
        #expect(run.failedCleanly)
        #expect(run.standardError.contains("--amqp-ca-file needs an amqps:// URL"), "\(run.standardError)")
    }

    @Test(
        "worker limits out of range are refused",
        arguments: [
            (["--concurrency", "0"], "--concurrency must be 1...256"),
            (["--max-attempts", "0"], "--max-attempts must be 1...100"),
        ]
            as [([String], String)])
    func workerLimits(_ extra: [String], _ message: String) throws {
        let run = try CommandRun.jsmMigrate(
            [
                "worker", "--source", "sqlite:/nonexistent/jsm-corpus/jira.sqlite", "--site-url", "http://127.0.0.1:1",
            ] + extra, environment: ["JSM_SITE_TOKEN": "t"])
        #expect(run.failedCleanly, "\(run.standardError)")
        #expect(run.standardError.contains(message), "\(run.standardError)")
    }
}
