import JSMDomain
import JSMSource
import JSMSourceFixtures
import Testing

@Suite("Generated Jira databases")
struct GeneratedSourceTests {
    /// Counts by kind and anomaly, plus every identity line, for comparing backends.
    struct Census: Equatable {
        var kinds: [IdentityKind: Int] = [:]
        var anomalies: [SourceAnomaly.Kind: Int] = [:]
        var disabled = 0
        var invalidEmails = 0
        var lines: [String] = []
    }

    static func census(_ source: JiraSource) async throws -> Census {
        try await source.checkSchema()
        let classifier = try await source.loadClassifier()
        var census = Census()
        for try await classified in source.classifiedIdentities(classifier: classifier) {
            let identity = classified.identity
            census.kinds[identity.kind, default: 0] += 1
            for anomaly in classified.anomalies { census.anomalies[anomaly.kind, default: 0] += 1 }
            if !identity.isActive { census.disabled += 1 }
            if identity.kind.needsCloudAccount, identity.emailValidity != .valid { census.invalidEmails += 1 }
            census.lines.append(
                "\(identity.userKey) \(identity.kind.rawValue) \(identity.directoryId ?? -1) \(identity.isActive) "
                    + "\(identity.email?.value ?? "-") \(classified.anomalies.map(\.kind.rawValue))")
        }
        for try await _ in source.danglingUserMemberships() {
            census.anomalies[.danglingMembership, default: 0] += 1
        }
        census.lines.sort()
        return census
    }

    @Test("2,000 generated users classify identically on both backends, in the documented proportions")
    func generatedDatabaseAgrees() async throws {
        let generator = JiraFixtureGenerator(users: 2_000, seed: 42)
        let (sqlite, summary) = try await withTestDatabase(.sqlite) { test in
            let summary = try await generator.generate(into: test.writer)
            return (try await Self.census(test.source), summary)
        }
        let postgres = try await withTestDatabase(.postgres) { test in
            try await generator.generate(into: test.writer)
            return try await Self.census(test.source)
        }
        #expect(sqlite == postgres)

        // What the generator meant is what the adapter finds.
        #expect(sqlite.kinds[.licensedUser] == summary.licensed)
        #expect(sqlite.kinds[.customer] == summary.customers)
        #expect(sqlite.kinds[.inactiveDirectory] == summary.inactiveDirectoryOnly + summary.unknownDirectory)
        #expect(sqlite.kinds[.deleted] == summary.deletedAppUsers + summary.deletedUnknownKeys)
        #expect(sqlite.disabled == summary.disabled)
        #expect(sqlite.anomalies[.danglingMembership] == summary.danglingMemberships)

        // And the shares are roughly the documented ones.
        let active = Double(summary.licensed + summary.customers)
        let licensedShare = Double(summary.licensed) / active
        #expect(abs(licensedShare - JiraFixtureProportions.licensed) < 0.03, "licensed share \(licensedShare)")
        let inactiveShare = Double(summary.inactiveDirectoryOnly) / Double(summary.users)
        #expect(abs(inactiveShare - JiraFixtureProportions.inactiveDirectoryOnly) < 0.015, "inactive \(inactiveShare)")
        let disabledShare = Double(summary.disabled) / Double(summary.users)
        #expect(abs(disabledShare - JiraFixtureProportions.disabled) < 0.015, "disabled \(disabledShare)")
        let missingShare = Double(sqlite.anomalies[.missingEmail] ?? 0) / Double(summary.users)
        #expect(abs(missingShare - JiraFixtureProportions.emailNull) < 0.01, "NULL emails \(missingShare)")
        #expect((sqlite.anomalies[.membershipCycle] ?? 0) > 0)
        #expect(sqlite.invalidEmails > 0)
        #expect(summary.requests == 1_000)
    }

    @Test("the same seed writes the same database; another seed another one")
    func generationIsDeterministic() async throws {
        func digest(_ backend: Backend, seed: UInt64) async throws -> UInt64 {
            try await withTestDatabase(backend) { test in
                try await JiraFixtureGenerator(users: 1_000, seed: seed).generate(into: test.writer)
                return try await FixtureDigest.digest(of: test.database)
            }
        }
        let first = try await digest(.sqlite, seed: 7)
        let again = try await digest(.sqlite, seed: 7)
        let other = try await digest(.sqlite, seed: 8)
        let onPostgres = try await digest(.postgres, seed: 7)
        #expect(first == again)
        #expect(first != other)
        #expect(first == onPostgres)
    }

    @Test("site accounts cover both conflict cases and are each (email, type) once")
    func siteAccounts() async throws {
        let accounts = try await withTestDatabase(.sqlite) { test in
            var accounts: [SiteAccount] = []
            try await JiraFixtureGenerator(users: 3_000, seed: 5).generate(into: test.writer) { accounts.append($0) }
            return accounts
        }
        #expect(Set(accounts.map { "\($0.accountType) \($0.email)" }).count == accounts.count)
        #expect(accounts.contains { $0.accountType == "customer" })
        #expect(accounts.contains { $0.accountType == "atlassian" })
        #expect(accounts.allSatisfy { EmailValidity(raw: $0.email) == .valid })
        #expect(accounts.first?.jsonLine.hasPrefix("{\"email\":\"") == true)
    }
}
