import JSMDomain
import JSMSource
import JSMSourceFixtures
import Testing

/// Rows a damaged or hostile Jira database can hold, read on both backends: NULL in every column
/// that can hold one and a display name of megabytes. Each is read, classified and bounded; none
/// stops the read.
@Suite("Jira source: hostile rows")
struct BadSourceTests {
    /// 5 MiB of display name, built by the database itself (no 5 MiB statement text).
    static func hugeDisplayNameSQL(_ backend: Backend) -> String {
        switch backend {
        case .sqlite: "'Huge ' || hex(zeroblob(2621440))"
        case .postgres: "'Huge ' || repeat('0', 5242880)"
        }
    }

    @Test("a 5 MB display name is read as its first 1,024 characters", arguments: Backend.allCases)
    func hugeDisplayName(backend: Backend) async throws {
        let (streamed, looked) = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            if backend == .postgres {
                // Jira's own column is varchar(255); a copied or hand-made database may not be.
                try await test.execute(
                    "ALTER TABLE \(test.database.table("cwd_user")) ALTER COLUMN display_name TYPE text")
            }
            try await test.execute(
                "UPDATE \(test.database.table("cwd_user")) SET display_name = \(Self.hugeDisplayNameSQL(backend)) "
                    + "WHERE id = 106")
            let source = test.source
            let classifier = try await source.loadClassifier()
            var streamed: ServerIdentity?
            for try await classified in source.classifiedIdentities(classifier: classifier)
            where classified.identity.userKey == "JIRAUSER106" {
                streamed = classified.identity
            }
            let looked = try await source.classify(userKeys: ["JIRAUSER106"], classifier: classifier).first?.identity
            return (streamed, looked)
        }
        let identity = try #require(streamed)
        #expect(identity.displayName.count == JiraSource.displayNameCharacterLimit)
        #expect(identity.displayName.hasPrefix("Huge 0000"))
        // The rest of the row is untouched: the same email, kind and directory as without the name.
        #expect(identity.email?.value == "cust.one@example.com")
        #expect(identity.kind == .customer && identity.directoryId == 1)
        #expect(looked == identity)
    }

    @Test(
        "NULL in every nullable column is read, classified and reported, never a failed read",
        arguments: Backend.allCases)
    func nullsEverywhere(backend: Backend) async throws {
        let reading = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            func table(_ name: String) -> String { test.database.table(name) }
            // A user with nothing but its id, name and directory; another with no directory at all.
            try await test.execute(
                "UPDATE \(table("cwd_user")) SET display_name = NULL, active = NULL, lower_email_address = NULL "
                    + "WHERE id = 101")
            try await test.execute("UPDATE \(table("cwd_user")) SET directory_id = NULL WHERE id = 117")
            // Rows of the other tables with NULL where Jira never writes one.
            try await test.execute(
                "INSERT INTO \(table("app_user")) (id, user_key, lower_user_name) VALUES (901, NULL, NULL)")
            try await test.execute(
                "INSERT INTO \(table("jiraissue")) (id, project, reporter, creator, assignee) "
                    + "VALUES (1100, 1, NULL, NULL, NULL)")
            try await test.execute(
                "INSERT INTO \(table("customfieldvalue")) (id, issue, customfield, stringvalue) "
                    + "VALUES (100, 1100, 10, NULL)")
            try await test.execute(
                "INSERT INTO \(table("AO_54307E_ORGANIZATION_MEMBER")) (\"ID\", \"ORGANIZATION_ID\", \"USER_KEY\") "
                    + "VALUES (100, 1, NULL)")
            try await test.execute(
                "INSERT INTO \(table("cwd_group")) (id, group_name, lower_group_name, active, directory_id) "
                    + "VALUES (99, NULL, NULL, NULL, NULL)")
            return try await SourceReading.read(test.source)
        }
        #expect(reading.duplicateKeys.isEmpty)
        // The same identities as the fixture without the NULLs: none lost, none invented.
        #expect(Set(reading.identities.keys) == Set(EdgeCaseFixture.expected.keys))
        // NULL active is active, NULL display name is empty, the email is read from email_address.
        let direct = try #require(reading.identityLines.first { $0.hasPrefix("JIRAUSER101 ") })
        #expect(direct.contains("Agent.Direct  Agent.Direct@Example.com agent.direct@example.com"), "\(direct)")
        #expect(reading.identities["JIRAUSER101"] == EdgeCaseFixture.Expected(kind: .licensedUser))
        // No directory: reported as an unknown directory, kind inactive-directory (a former when referenced).
        #expect(reading.identities["JIRAUSER117"]?.kind == .inactiveDirectory)
        #expect(reading.anomalies.contains { $0.hasPrefix("unknown_directory (user key JIRAUSER117)") })
        // The request with no people references nobody new.
        #expect(reading.related["SD1"] == EdgeCaseFixture.related["SD1"])
    }
}
