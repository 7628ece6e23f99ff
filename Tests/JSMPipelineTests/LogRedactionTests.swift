import JSMCloud
import JSMLedger
import Testing

@testable import JSMPipeline

/// User keys and names that are emails (portal customers, legacy keys) are masked in logs; other
/// identifiers and sentences are logged unchanged.
@Suite("Log redaction of identifiers")
struct LogRedactionTests {
    @Test(
        "an identifier is masked only when it is an email",
        arguments: [
            ("JIRAUSER10203", "JIRAUSER10203"), ("ann.patel607", "ann.patel607"),
            ("Ann.Patel@Example.com", "a***@example.com"), (" ann@example.com ", "a***@example.com"),
            ("@nobody", "***"), ("", ""),
        ])
    func identifier(_ value: String, _ logged: String) {
        #expect(LogRedaction.identifier(value) == logged)
    }

    @Test("every email inside a sentence is masked, the rest kept")
    func text() {
        #expect(
            LogRedaction.text("cwd_user 'Ann@Example.com' in directory 1 has no email")
                == "cwd_user 'a***@example.com' in directory 1 has no email")
        #expect(
            LogRedaction.text("missing_app_user (user key bob@example.com): cwd_user 'bob@example.com' has no row")
                == "missing_app_user (user key b***@example.com): cwd_user 'b***@example.com' has no row")
        #expect(LogRedaction.text("group 'cycle-b' (cwd_group 109)") == "group 'cycle-b' (cwd_group 109)")
    }

    @Test("a site refusal's detail keeps the site's reason on one line, emails masked, at most 300 characters")
    func refusalDetail() {
        func refusal(_ message: String, status: Int? = 400) -> String {
            CloudSiteError(
                code: .invalidRequest, status: status, host: "site:443", path: "POST /rest/servicedeskapi/customer",
                message: message
            ).refusalDetail
        }
        #expect(
            refusal("email: 'bob@example.com' is not\n  a valid address")
                == "site refused: invalid_request 400: email: 'b***@example.com' is not a valid address")
        #expect(refusal("") == "site refused: invalid_request 400")
        #expect(refusal(" ", status: nil) == "site refused: invalid_request")
        let page = refusal("<html>" + String(repeating: "x ", count: 1000) + "</html>")
        #expect(page.hasPrefix("site refused: invalid_request 400: <html>x x"))
        #expect(page.hasSuffix("..."))
        #expect(page.count == "site refused: invalid_request 400: ".count + CloudSiteError.refusalReasonLimit + 3)
    }

    @Test("a busy ledger is logged as busy at info, an unreachable one as unavailable at warning")
    func retriableLedgerLines() {
        // SQLite's busy timeout (SQLiteAvailabilityTests) and PostgreSQL's serialization failures
        // are transaction conflicts: expected while another process writes, not an outage.
        let busy = MigrationAggregator.retriableLogLine(
            LedgerError(.transactionConflict, operation: "advanceToMigratePhase", "database is locked"),
            then: "next check later")
        #expect(busy.0 == .info)
        #expect(busy.1 == "ledger busy: another transaction holds it; next check later")
        let down = MigrationAggregator.retriableLogLine(
            LedgerError(.unavailable, operation: "recordReply", "connection refused"), then: "reply requeued")
        #expect(down.0 == .warning)
        #expect(down.1 == "ledger unavailable; reply requeued")
    }
}
