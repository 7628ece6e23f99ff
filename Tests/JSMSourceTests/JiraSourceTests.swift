import JSMDomain
import JSMSource
import JSMSourceFixtures
import Testing

/// Everything the adapter reads from one database, in a form two backends can be compared on.
struct SourceReading: Equatable {
    var identities: [String: EdgeCaseFixture.Expected] = [:]
    var identityLines: [String] = []
    var anomalies: [String] = []
    var related: [String: [String]] = [:]
    var groups: [String] = []
    var memberships: [String] = []
    var reporters: [String] = []
    var duplicateKeys: [String] = []

    static func read(_ source: JiraSource) async throws -> SourceReading {
        try await source.checkSchema()
        let classifier = try await source.loadClassifier()
        var reading = SourceReading()
        for try await classified in source.classifiedIdentities(classifier: classifier) {
            let identity = classified.identity
            if reading.identities[identity.userKey] != nil { reading.duplicateKeys.append(identity.userKey) }
            reading.identities[identity.userKey] = EdgeCaseFixture.observed(classified)
            reading.identityLines.append(
                "\(identity.userKey) \(identity.userName) \(identity.displayName) \(identity.rawEmail ?? "NULL") "
                    + "\(identity.email?.value ?? "-") \(identity.directoryPosition.map(String.init) ?? "-") "
                    + "\(EdgeCaseFixture.observed(classified))")
            reading.anomalies += classified.anomalies.map(\.description)
        }
        reading.identityLines.sort()
        reading.anomalies += classifier.licensing.anomalies.map(\.description)
        for try await anomaly in source.danglingUserMemberships() { reading.anomalies.append(anomaly.description) }
        reading.anomalies.sort()
        for project in try await source.projects() {
            var lines: [String] = []
            for try await reference in source.relatedIdentities(of: project) {
                lines.append("\(reference.userKey) \(reference.role.rawValue)")
            }
            reading.related[project.key] = lines.sorted()
        }
        for try await group in source.groups() {
            reading.groups.append("\(group.id) \(group.directoryId) \(group.name) \(group.lowerName) \(group.isActive)")
        }
        for try await membership in source.memberships() {
            reading.memberships.append(
                "\(membership.row.id) \(membership.row.type.rawValue) \(membership.row.parentId)>\(membership.row.childId) "
                    + "\(membership.groupName)>\(membership.childName) key=\(membership.userKey ?? "-")")
        }
        for try await reporter in source.requestReporters() { reading.reporters.append(reporter) }
        return reading
    }
}

@Suite("Jira source on SQLite and PostgreSQL")
struct JiraSourceTests {
    @Test("every edge case is classified as the rules say", arguments: Backend.allCases)
    func classifiesEveryEdgeCase(backend: Backend) async throws {
        let reading = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            return try await SourceReading.read(test.source)
        }
        #expect(reading.duplicateKeys.isEmpty)
        #expect(reading.identities.count == EdgeCaseFixture.expected.count)
        for (key, expected) in EdgeCaseFixture.expected.sorted(by: { $0.key < $1.key }) {
            #expect(reading.identities[key] == expected, "user key \(key)")
        }
    }

    @Test("malformed rows are reported with their user keys", arguments: Backend.allCases)
    func reportsMalformedRows(backend: Backend) async throws {
        let reading = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            return try await SourceReading.read(test.source)
        }
        let prefixes = reading.anomalies.map { $0.prefix(while: { $0 != ":" }) }
        #expect(
            prefixes.sorted() == [
                "dangling_membership (user key -)", "dangling_membership (user key JIRAUSER120)",
                "dangling_membership (user key vanished)", "membership_cycle (user key JIRAUSER119)",
                "missing_app_user (user key no.appuser)", "missing_email (user key JIRAUSER108)",
                "unknown_directory (user key JIRAUSER122)",
            ])
    }

    @Test(
        "a project's related identities: reporters, creators, assignees, participants, organization members",
        arguments: Backend.allCases)
    func listsRelatedIdentities(backend: Backend) async throws {
        let reading = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            return try await SourceReading.read(test.source)
        }
        #expect(reading.related == EdgeCaseFixture.related)
        // Service-project reporters only, each once; the software project's reporter is not one.
        #expect(
            reading.reporters == ["JIRAUSER106", "JIRAUSER112", "JIRAUSER123", "JIRAUSER900", "ghost", "no.appuser"])
    }

    @Test("groups and memberships are listed with names and user keys", arguments: Backend.allCases)
    func listsGroupsAndMemberships(backend: Backend) async throws {
        let reading = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            return try await SourceReading.read(test.source)
        }
        #expect(reading.groups.count == 10)
        #expect(reading.groups.first == "17 1 all-staff all-staff true")
        #expect(reading.memberships.count == 17)
        #expect(reading.memberships.contains("2 GROUP_GROUP 13>14 service-desk-agents>Support-Tier2 key=-"))
        #expect(reading.memberships.contains("16 GROUP_USER 11>111 jira-software-users>disabled.agent key=JIRAUSER111"))
        #expect(reading.memberships.contains("20 GROUP_USER 17>999 all-staff>vanished key=vanished"))
    }

    @Test("SQLite and PostgreSQL give exactly the same answers")
    func backendsAgree() async throws {
        let sqlite = try await withTestDatabase(.sqlite) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            return try await SourceReading.read(test.source)
        }
        let postgres = try await withTestDatabase(.postgres) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            return try await SourceReading.read(test.source)
        }
        #expect(sqlite.identityLines.count == EdgeCaseFixture.expected.count)
        #expect(sqlite == postgres)
    }

    @Test("classifying a batch of keys matches the full classification", arguments: Backend.allCases)
    func classifiesKeys(backend: Backend) async throws {
        let (batch, full) = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            let source = test.source
            let classifier = try await source.loadClassifier()
            let keys = EdgeCaseFixture.expected.keys.sorted() + ["never.seen"]
            let batch = try await source.classify(userKeys: keys, classifier: classifier)
            var full: [String: ClassifiedIdentity] = [:]
            for try await classified in source.classifiedIdentities(classifier: classifier) {
                full[classified.identity.userKey] = classified
            }
            return (batch, full)
        }
        #expect(batch.count == EdgeCaseFixture.expected.count + 1)
        for classified in batch.dropLast() {
            #expect(classified == full[classified.identity.userKey], "user key \(classified.identity.userKey)")
        }
        #expect(batch.last?.identity.kind == .deleted)
        #expect(batch.last?.identity.userKey == "never.seen")
    }

    @Test("a missing table is named", arguments: Backend.allCases)
    func namesMissingTable(backend: Backend) async throws {
        let error = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            try await test.execute("DROP TABLE \(test.database.table("AO_54307E_ORGANIZATION_MEMBER"))")
            return await #expect(throws: SourceError.self) { try await test.source.checkSchema() }
        }
        #expect(error?.code == .missingSchemaObject)
        #expect(error?.missing == [MissingSchemaObject(table: "AO_54307E_ORGANIZATION_MEMBER", column: nil)])
        #expect(error?.message.contains("table AO_54307E_ORGANIZATION_MEMBER") == true)
    }

    @Test("a missing column is named with its table", arguments: Backend.allCases)
    func namesMissingColumn(backend: Backend) async throws {
        let error = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            try await test.execute("ALTER TABLE \(test.database.table("cwd_user")) DROP COLUMN lower_email_address")
            return await #expect(throws: SourceError.self) { try await test.source.checkSchema() }
        }
        #expect(error?.missing == [MissingSchemaObject(table: "cwd_user", column: "lower_email_address")])
        #expect(error?.message.contains("column cwd_user.lower_email_address") == true)
    }

    @Test("an empty database is missing every table, in one error", arguments: Backend.allCases)
    func emptyDatabase(backend: Backend) async throws {
        let error = try await withTestDatabase(backend) { test in
            await #expect(throws: SourceError.self) { try await test.source.checkSchema() }
        }
        #expect(error?.missing.count == JiraSchema.requiredColumns.count)
        #expect(error?.missing.allSatisfy { $0.column == nil } == true)
    }

    @Test(
        "the directory users' stream is the whole stream less the formers with no source rows",
        arguments: Backend.allCases)
    func directoryUsersOnly(backend: Backend) async throws {
        let (all, directory) = try await withTestDatabase(backend) { test in
            try await EdgeCaseFixture.write(to: test.writer)
            let source = test.source
            let classifier = try await source.loadClassifier()
            var all: [ClassifiedIdentity] = []
            for try await classified in source.classifiedIdentities(classifier: classifier) { all.append(classified) }
            var directory: [ClassifiedIdentity] = []
            for try await classified in source.classifiedDirectoryUsers(classifier: classifier) {
                directory.append(classified)
            }
            return (all, directory)
        }
        // The same identities, in the same order, with the same anomalies and groups, up to where
        // the directory users end.
        #expect(directory.count < all.count, "the fixture has app users and references with no directory user")
        #expect(Array(all.prefix(directory.count)) == directory)
        // What the shorter stream leaves out can never be claimed by `--customers all` or
        // `--users all`, nor give a group: deleted, without anomaly or group.
        let left = all.dropFirst(directory.count)
        #expect(left.allSatisfy { $0.identity.kind == .deleted && $0.anomalies.isEmpty && $0.directGroupIds.isEmpty })
        let selection = try ScopeSelection(
            options: ScopeOptions(customers: .all, includeRequestless: true, users: .all), projects: [])
        #expect(left.allSatisfy { selection.categoryWithoutReference($0.identity, isRequestReporter: true) == nil })
        #expect(Set(directory.map(\.identity.userKey)).isDisjoint(with: left.map(\.identity.userKey)))
    }

    @Test("a reader that stops early releases the statement", arguments: Backend.allCases)
    func abandonedStream(backend: Backend) async throws {
        let counts = try await withTestDatabase(backend) { test in
            try await JiraFixtureGenerator(users: 3_000, seed: 3).generate(into: test.writer)
            let source = test.source
            let classifier = try await source.loadClassifier()
            var first = 0
            for try await _ in source.classifiedIdentities(classifier: classifier) {
                first += 1
                if first == 10 { break }
            }
            // The source still answers, and a full read afterwards sees everything.
            var all = 0
            for try await _ in source.classifiedIdentities(classifier: classifier) { all += 1 }
            return (first, all)
        }
        #expect(counts.0 == 10)
        #expect(counts.1 > 3_000)
    }
}
