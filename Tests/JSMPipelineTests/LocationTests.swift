import JSMSource
import Testing

@testable import JSMPipeline

@Suite("Ledger, source and site locations")
struct LocationTests {
    @Test("ledger locations: sqlite:PATH, postgres, postgres:SCHEMA; anything else is refused")
    func ledgerLocations() {
        #expect(LedgerLocation("sqlite:/tmp/l.sqlite")?.kind == .sqlite(path: "/tmp/l.sqlite"))
        #expect(LedgerLocation("postgres")?.kind == .postgres(schema: "jsm_ledger"))
        #expect(LedgerLocation("postgres:ops")?.kind == .postgres(schema: "ops"))
        for bad in ["", "sqlite:", "postgres:", "mysql:x", "/tmp/l.sqlite"] {
            #expect(LedgerLocation(bad) == nil, "\(bad)")
        }
    }

    @Test("source locations: sqlite:PATH and postgres:SCHEMA only")
    func sourceLocations() {
        #expect(SourceLocation("sqlite:jira.sqlite")?.kind == .sqlite(path: "jira.sqlite"))
        #expect(SourceLocation("postgres:jira")?.kind == .postgres(schema: "jira"))
        #expect(SourceLocation("postgres") == nil)
        #expect(SourceLocation("jira.sqlite") == nil)
    }

    @Test("a PostgreSQL source with a wrong password is refused at once: login_refused, naming what to check")
    func sourceLoginRefused() async throws {
        var environment = EndToEnd.environment
        environment["POSTGRES_PASSWORD"] = "not-the-password"
        let source = try #require(SourceLocation("postgres:jira"))
        let error = await #expect(throws: SourceError.self) {
            try await source.withSource(environment: environment) { _ in }
        }
        #expect(error?.code == .loginRefused)
        #expect(error?.message.contains("SQLSTATE 28P01") == true, "\(String(describing: error))")
        #expect(error?.message.contains("POSTGRES_PASSWORD") == true)
        #expect(error?.message.contains("not-the-password") == false)
    }

    @Test("a site's id defaults to host:port, and its description never holds the token")
    func siteLocation() {
        let site = SiteLocation(baseURL: "http://127.0.0.1:8480/", userEmail: "a@example.com", apiToken: "t0ken-XYZ")
        #expect(site.siteId == "127.0.0.1:8480")
        #expect(site.baseURL == "http://127.0.0.1:8480")
        #expect(!site.description.contains("t0ken-XYZ"))
        #expect(
            SiteLocation(baseURL: "https://acme.atlassian.net", userEmail: "a", apiToken: "t").siteId
                == "acme.atlassian.net")
    }
}
