import Foundation
import Testing

/// Bad start-up input for the local cloud site: a clear error and a non-zero exit, never a hang.
@Suite("jsm-migrate cloud-site start-up errors")
struct CloudSiteCommandTests {
    @Test("an unreachable PostgreSQL store ends start-up with one error naming the cause")
    func unreachablePostgres() throws {
        let token = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-site-token-\(UUID())")
        try "test-token".write(to: token, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: token) }
        let run = try CommandRun.jsmMigrate(
            ["cloud-site", "--postgres", "--token-file", token.path, "--port", "0"],
            environment: ["POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1", "POSTGRES_PASSWORD": "unused"])
        #expect(run.failedCleanly)
        #expect(run.standardError.contains("is PostgreSQL reachable"), "\(run.standardError)")
        #expect(!run.standardError.contains("test-token"))
    }

    @Test("a PostgreSQL store that refuses the password ends start-up at once with login refused, not a timeout")
    func refusedPostgresLogin() throws {
        // The project's real PostgreSQL (scripts/services.sh), asked with a password it refuses.
        let environment = ProcessInfo.processInfo.environment
        let host = try #require(environment["POSTGRES_HOST"], "run under scripts/services.sh env")
        let token = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-site-token-\(UUID())")
        try "test-token".write(to: token, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: token) }
        let wrong = "not-the-password-\(UUID())"
        let run = try CommandRun.jsmMigrate(
            ["cloud-site", "--postgres", "--token-file", token.path, "--port", "0"],
            environment: ["POSTGRES_HOST": host, "POSTGRES_PASSWORD": wrong])
        #expect(run.failedCleanly)
        #expect(run.standardError.contains("the site's store: PostgreSQL at"), "\(run.standardError)")
        #expect(run.standardError.contains("SQLSTATE 28P01"), "\(run.standardError)")
        #expect(run.standardError.contains("POSTGRES_PASSWORD"), "\(run.standardError)")
        #expect(!run.standardError.contains("is PostgreSQL reachable"), "\(run.standardError)")
        #expect(!run.standardError.contains(wrong))
        #expect(!run.standardError.contains("test-token"))
    }

    @Test("no token is refused before anything starts")
    func missingToken() throws {
        let run = try CommandRun.jsmMigrate(
            ["cloud-site", "--sqlite", "/tmp/jsm-site-never-created.sqlite", "--port", "0"],
            environment: ["JSM_SITE_TOKEN": ""])
        #expect(run.failedCleanly)
        #expect(run.standardError.contains("token"), "\(run.standardError)")
    }
}
