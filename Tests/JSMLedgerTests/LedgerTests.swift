import Foundation
import JSMDomain
import Testing

@testable import JSMLedger

/// One suite, run against SQLite and PostgreSQL: the ledger must behave the same on both.
@Suite("Ledger", .serialized)
struct LedgerTests {
    @Test("schema migrations apply once, are idempotent, and a newer ledger is refused", arguments: Backend.allCases)
    func schemaMigrations(backend: Backend) async throws {
        try await withTestLedger(backend, migrateSchema: false) { ledger in
            #expect(try await ledger.schemaVersion() == 0)
            let first = try await ledger.migrateSchema()
            #expect(first.applied == LedgerSchema.migrations.map(\.version))
            #expect(first.applied == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
            #expect(first.currentVersion == LedgerSchema.currentVersion)
            // Versions 7 and 9 are PostgreSQL's alone: SQLite is recorded at them and keeps version
            // 6's email order; PostgreSQL's names no column a worker's outcome update writes.
            let definitionSQL =
                backend == .postgres
                ? "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1"
                : "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1"
            let emailOrder = try await ledger.database.transaction("index", readOnly: true) { session in
                try await session.first(definitionSQL, [.text("ledger_scope_order")])?.text(0)
            }
            #expect(emailOrder?.contains("outcome IS NULL") == (backend == .sqlite))
            #expect(emailOrder?.contains("batch_id IS NULL") == (backend == .postgres))
            #expect(emailOrder?.contains("settled_at_claim IS NULL") == (backend == .postgres))
            // Version 10: the scope has no foreign key to the migrations.
            #expect(try await scopeReferencesMigrations(ledger) == false)
            let second = try await ledger.migrateSchema()
            #expect(second.applied.isEmpty)
            #expect(try await ledger.schemaVersion() == LedgerSchema.currentVersion)

            try await rawExecute(
                ledger, "INSERT INTO ledger_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)")
            let error = await #expect(throws: LedgerError.self) { try await ledger.migrateSchema() }
            #expect(error?.code == .schemaTooNew)
            #expect(error?.isRetriable == false)
            #expect(error?.message.contains("99") == true)
        }
    }

    @Test(
        "a ledger at version 9 drops the scope's key to its migration at 10 and keeps its rows",
        arguments: Backend.allCases)
    func scopeForeignKeyDropped(backend: Backend) async throws {
        try await withTestLedger(backend, migrateSchema: false) { ledger in
            #expect(try await ledger.migrateSchema(through: 9).currentVersion == 9)
            #expect(try await scopeReferencesMigrations(ledger))
            _ = try await ledger.createOrResumeMigration(definition("m1"))
            let claimed = try await ledger.claimScope(
                migrationId: "m1", projectId: Projects.helpdesk.id,
                identities: [People.customer("ann", "ann@example.com"), People.agent("cat", "cat@example.com")])
            #expect(claimed.newlyClaimed == ScopeCounts(customers: 1, licensedUsers: 1))

            #expect(try await ledger.migrateSchema().applied == [10])
            #expect(try await scopeReferencesMigrations(ledger) == false)
            let checks = try await ledger.database.transaction("check", readOnly: true) { session in
                let sqlite = session.dialect == .sqlite
                return (
                    integrity: sqlite ? try await session.first("PRAGMA integrity_check", [])?.text(0) : "ok",
                    references: try await session.first(
                        sqlite
                            ? "SELECT COUNT(DISTINCT id) FROM pragma_foreign_key_list('ledger_project_references')"
                            : """
                            SELECT COUNT(*) FROM pg_constraint
                            WHERE conrelid = 'ledger_project_references'::regclass AND contype = 'f'
                            """, []
                    )?.int(0),
                    scope: try await session.first("SELECT COUNT(*) FROM ledger_scope", [])?.int(0)
                )
            }
            #expect(checks.integrity == "ok")
            #expect(checks.references == 2, "the references keep their keys to the scope and the projects")
            #expect(checks.scope == 2)
            // Claims go on after the upgrade, and count each identity once as before.
            let after = try await ledger.claimScope(
                migrationId: "m1", projectId: Projects.helpdesk.id,
                identities: [People.customer("ann", "ann@example.com"), People.customer("bob", "bob@example.com")])
            #expect(after.newlyClaimed == ScopeCounts(customers: 1))
            let missing = await #expect(throws: LedgerError.self) {
                try await ledger.claimScope(
                    migrationId: "nope", identities: [People.customer("bob", "bob@example.com")])
            }
            #expect(missing?.code == .notFound, "the claim itself refuses a migration that does not exist")
        }
    }

    @Test("an SQLite ledger whose scope definition was edited by hand is refused at version 10, unchanged")
    func sqliteEditedScopeRefused() async throws {
        try await withTestLedger(.sqlite, migrateSchema: false) { ledger in
            try await ledger.migrateSchema(through: 9)
            // Someone dropped the key already, by the same documented procedure.
            try await ledger.database.transaction("edit") { session in
                try await SQLiteTableEdit.apply(
                    [
                        SQLiteTableEdit(
                            table: "ledger_scope", replacing: "REFERENCES ledger_migrations (migration_id),", with: ",")
                    ], version: 0, in: session)
            }
            let error = await #expect(throws: LedgerError.self) { try await ledger.migrateSchema() }
            #expect(error?.message.contains("table ledger_scope does not contain") == true)
            #expect(try await ledger.schemaVersion() == 9)
        }
    }

    @Test("a migration is created, resumed with the same options, refused with others", arguments: Backend.allCases)
    func createResumeConflict(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let original = definition("m1", projects: [Projects.helpdesk, Projects.software])
            let created = try await ledger.createOrResumeMigration(original)
            #expect(created.resumed == false)
            #expect(created.migration.state == .saved)
            #expect(created.migration.phase == .expand)
            #expect(created.migration.projectIds == [Projects.helpdesk.id, Projects.software.id])
            #expect(created.migration.projectCount == 2)

            // The same definition with the projects in another order is the same migration.
            var reordered = original
            reordered.projects.reverse()
            let resumed = try await ledger.createOrResumeMigration(reordered)
            #expect(resumed.resumed == true)
            #expect(resumed.migration == created.migration)

            var other = original
            other.scope.users = .all
            other.batchSize = 100
            let conflict = await #expect(throws: LedgerError.self) { try await ledger.createOrResumeMigration(other) }
            #expect(conflict?.code == .migrationConflict)
            #expect(conflict?.message.contains("--users") == true)
            #expect(conflict?.message.contains("--batch-size") == true)
            #expect(conflict?.isRetriable == false)

            let invalid = definition("m2", scope: ScopeOptions(customers: .none))
            let refused = await #expect(throws: LedgerError.self) { try await ledger.createOrResumeMigration(invalid) }
            #expect(refused?.code == .invalidRequest)
            #expect(try await ledger.migration("m2") == nil)

            #expect(try await ledger.setMigrationState("m1", to: .running, from: [.saved]))
            #expect(try await ledger.setMigrationState("m1", to: .running, from: [.saved]) == false)
            #expect(try await ledger.migration("m1")?.state == .running)
        }
    }

    @Test("each identity is claimed once however many projects and deliveries claim it", arguments: Backend.allCases)
    func claimsCountOnce(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            _ = try await ledger.createOrResumeMigration(
                definition("m1", projects: [Projects.helpdesk, Projects.facilities]))
            let ann = People.customer("ann", "ann@example.com")
            let bob = People.customer("bob", "bob@example.com")
            let cat = People.agent("cat", "cat@example.com")
            let dan = People.customer("dan", "dan@example.com")
            let gone = People.deleted("gone")
            let eve = People.customer("eve", "eve@example.com")

            let help = try await ledger.claimScope(
                migrationId: "m1", projectId: Projects.helpdesk.id, identities: [ann, bob, cat, ann])
            #expect(help.newlyClaimed == ScopeCounts(customers: 2, licensedUsers: 1, formers: 0))
            #expect(help.identitiesGiven == 3)
            let redelivered = try await ledger.claimScope(
                migrationId: "m1", projectId: Projects.helpdesk.id, identities: [ann, bob, cat])
            #expect(redelivered.newlyClaimed.total == 0)
            let facilities = try await ledger.claimScope(
                migrationId: "m1", projectId: Projects.facilities.id, identities: [bob, cat, dan, gone])
            #expect(facilities.newlyClaimed == ScopeCounts(customers: 1, licensedUsers: 0, formers: 1))
            let producer = try await ledger.claimScope(migrationId: "m1", identities: [ann, eve])
            #expect(producer.newlyClaimed == ScopeCounts(customers: 1))

            let help1 = try await ledger.recordProjectExpanded(
                migrationId: "m1", projectId: Projects.helpdesk.id, issuesScanned: 7
            ) { expansion in Array("help \(expansion.referenced.total)".utf8) }
            #expect(help1.replayed == false)
            #expect(help1.expansion.referenced == ScopeCounts(customers: 2, licensedUsers: 1))
            #expect(help1.expansion.claimed == ScopeCounts(customers: 2, licensedUsers: 1))
            #expect(help1.result == Array("help 3".utf8))
            let help2 = try await ledger.recordProjectExpanded(
                migrationId: "m1", projectId: Projects.helpdesk.id, issuesScanned: 99
            ) { _ in Array("other".utf8) }
            #expect(help2.replayed == true)
            #expect(help2.result == help1.result)
            #expect(help2.expansion == help1.expansion)

            #expect(try await ledger.pendingProjects(migrationId: "m1") == [Projects.facilities.id])
            let fac = try await ledger.recordProjectExpanded(
                migrationId: "m1", projectId: Projects.facilities.id, issuesScanned: 3
            ) { _ in [] }
            #expect(fac.expansion.referenced == ScopeCounts(customers: 2, licensedUsers: 1, formers: 1))
            #expect(fac.expansion.claimed == ScopeCounts(customers: 1, formers: 1))

            let totals = try await ledger.totals(migrationId: "m1")
            #expect(totals.byCategory[.customer]?.inScope == 4)
            #expect(totals.byCategory[.licensedUser]?.inScope == 1)
            #expect(totals.byCategory[.former]?.inScope == 1)
            // Claimed by the projects plus by the producer = the scope, each identity once.
            let claimedSum = help.newlyClaimed.total + facilities.newlyClaimed.total + producer.newlyClaimed.total
            #expect(claimedSum == totals.overall.inScope)
            #expect(totals.byProject[Projects.helpdesk.id]?.values.reduce(0) { $0 + $1.inScope } == 3)
            #expect(totals.byProject[Projects.facilities.id]?.values.reduce(0) { $0 + $1.inScope } == 4)

            #expect(try await ledger.advanceToMigratePhase(migrationId: "m1").won)
            let late = await #expect(throws: LedgerError.self) {
                try await ledger.claimScope(migrationId: "m1", identities: [People.customer("zed", "z@example.com")])
            }
            #expect(late?.code == .invalidRequest)
            let unknownProject = await #expect(throws: LedgerError.self) {
                try await ledger.claimScope(migrationId: "nope", projectId: 1, identities: [ann])
            }
            #expect(unknownProject?.code == .notFound)
        }
    }

    @Test("batches never split an email and depend only on the scope", arguments: Backend.allCases)
    func batching(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            // 120 identities: unique emails, groups of 2-5 sharing one email in various spellings,
            // missing emails; batch size 10 so that groups straddle the boundaries.
            var people: [ServerIdentity] = []
            var groupNumber = 0
            while people.count < 120 {
                let size = [1, 1, 3, 1, 5, 2, 1, 4][groupNumber % 8]
                for member in 0..<size {
                    let spelling =
                        member % 2 == 0 ? "Person\(groupNumber)@Example.com" : " person\(groupNumber)@example.com "
                    let key = "u\(groupNumber)-\(member)"
                    people.append(member == 1 ? People.agent(key, spelling) : People.customer(key, spelling))
                }
                groupNumber += 1
            }
            for index in 0..<6 { people.append(People.customer("nomail-\(index)", nil)) }

            _ = try await ledger.createOrResumeMigration(definition("m1", projects: [], batchSize: 10))
            try await ledger.claimScope(migrationId: "m1", identities: people)
            _ = try await ledger.createOrResumeMigration(definition("m2", projects: [], batchSize: 10))
            // The same scope claimed in another order and in small pieces must give the same batches.
            var shuffled = people
            shuffled.reverse()
            shuffled.swapAt(3, 40)
            var start = 0
            while start < shuffled.count {
                try await ledger.claimScope(
                    migrationId: "m2", identities: Array(shuffled[start..<min(start + 7, shuffled.count)]))
                start += 7
            }

            // The same scope cut 7 identities per page (SQLite cuts in pages): boundaries fall inside email groups.
            _ = try await ledger.createOrResumeMigration(definition("m3", projects: [], batchSize: 10))
            try await ledger.claimScope(migrationId: "m3", identities: people)
            let smallPages = Ledger(database: ledger.database, cutPageSize: 7)

            func assignment(_ migrationId: String, by cutter: Ledger? = nil) async throws -> [[String]] {
                guard
                    case .advanced(let cut) = try await (cutter ?? ledger).advanceToMigratePhase(
                        migrationId: migrationId)
                else {
                    Issue.record("the first advance must win")
                    return []
                }
                #expect(cut.identityCount == people.count)
                let batches = try await ledger.batches(migrationId: migrationId)
                #expect(batches.count == cut.batchCount)
                #expect(batches.map(\.sequence) == Array(0..<Int64(batches.count)))
                var result: [[String]] = []
                for batch in batches {
                    let content = try await ledger.loadIdentityBatch(migrationId: migrationId, batchId: batch.batchId)
                    #expect(content.identities.count == batch.identityCount)
                    let order: [String] = content.identities.map { ($0.email?.value ?? "") + "\u{0}" + $0.userKey }
                    #expect(order == order.sorted())
                    result.append(content.identities.map(\.userKey))
                }
                return result
            }
            let first = try await assignment("m1")
            let second = try await assignment("m2")
            #expect(first == second)
            #expect(try await assignment("m3", by: smallPages) == first)
            #expect(first.count >= 12)
            #expect(Set(first.joined()).count == people.count)
            #expect(first.joined().count == people.count)

            let emailOf = Dictionary(uniqueKeysWithValues: people.map { ($0.userKey, $0.email?.value) })
            var batchOfEmail: [String: Int] = [:]
            for (index, keys) in first.enumerated() {
                for key in keys {
                    guard let email = emailOf[key] ?? nil else { continue }
                    if let seen = batchOfEmail[email] {
                        #expect(seen == index, "email of \(key) is split across batches \(seen) and \(index)")
                    }
                    batchOfEmail[email] = index
                }
            }
            // Sizes stay near the target: an email group may push a batch past it, never far.
            #expect(first.allSatisfy { $0.count <= 10 + 4 })
        }
    }

    @Test(
        "completing a batch is atomic: a failure inside leaves no mapping row and no state", arguments: Backend.allCases
    )
    func completionIsAtomic(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let people = (0..<20).map { People.customer("c\($0)", "c\($0)@example.com") }
            try await prepareBatches(ledger, "m1", people, batchSize: 20)
            let content = try await ledger.loadIdentityBatch(migrationId: "m1", batchId: "identities-0")
            var mappings = content.identities.map(createdMapping)

            // One result names an identity of no batch: detected after the mapping rows were written.
            mappings[19] = IdentityMapping(
                userKey: "stranger", outcome: .created, accountId: "x", accountType: .customer)
            let foreign = await #expect(throws: LedgerError.self) {
                try await ledger.completeBatch(
                    migrationId: "m1", batchId: "identities-0", mappings: mappings, result: [1])
            }
            #expect(foreign?.code == .invalidRequest)
            try await expectUntouched(ledger, "m1", "identities-0")

            // A created account without an account id violates the mapping table's constraint.
            mappings = content.identities.map(createdMapping)
            mappings[10] = IdentityMapping(userKey: mappings[10].userKey, outcome: .created)
            let constraint = await #expect(throws: LedgerError.self) {
                try await ledger.completeBatch(
                    migrationId: "m1", batchId: "identities-0", mappings: mappings, result: [1])
            }
            #expect(constraint?.code == .constraintViolation)
            #expect(constraint?.operation == "completeBatch")
            try await expectUntouched(ledger, "m1", "identities-0")

            let short = await #expect(throws: LedgerError.self) {
                try await ledger.completeBatch(
                    migrationId: "m1", batchId: "identities-0", mappings: Array(mappings.prefix(5)), result: [1])
            }
            #expect(short?.code == .invalidRequest)
            try await expectUntouched(ledger, "m1", "identities-0")
        }
    }

    @Test("a redelivered completion adds no mapping row and returns the stored result", arguments: Backend.allCases)
    func completionIsIdempotent(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let people = (0..<30).map { People.customer("c\($0)", "c\($0)@example.com") }
            try await prepareBatches(ledger, "m1", people, batchSize: 15)
            let content = try await ledger.loadIdentityBatch(migrationId: "m1", batchId: "identities-0")
            let mappings = content.identities.map(createdMapping)

            #expect(try await ledger.completedResult(migrationId: "m1", batchId: "identities-0") == nil)
            let first = try await ledger.completeBatch(
                migrationId: "m1", batchId: "identities-0", mappings: mappings, result: [1, 2, 3])
            #expect(try await ledger.completedResult(migrationId: "m1", batchId: "identities-0") == [1, 2, 3])
            #expect(first == BatchCompletion(replayed: false, result: [1, 2, 3]))
            let again = try await ledger.completeBatch(
                migrationId: "m1", batchId: "identities-0", mappings: mappings, result: [9, 9])
            #expect(again == BatchCompletion(replayed: true, result: [1, 2, 3]))
            #expect(try await ledger.mappingCount(siteId: "site-a") == 15)
            let batch = try #require(try await ledger.batch(migrationId: "m1", batchId: "identities-0"))
            #expect(batch.state == .done)
            #expect(batch.attempts == 1)

            // Two deliveries of the other batch completing at the same moment: one does the work.
            let other = try await ledger.loadIdentityBatch(migrationId: "m1", batchId: "identities-1")
            let otherMappings = other.identities.map(createdMapping)
            let completions = try await withThrowingTaskGroup(of: BatchCompletion.self) { group in
                for attempt in 0..<4 {
                    group.addTask {
                        try await ledger.completeBatch(
                            migrationId: "m1", batchId: "identities-1", mappings: otherMappings,
                            result: [UInt8(attempt)])
                    }
                }
                var all: [BatchCompletion] = []
                for try await completion in group { all.append(completion) }
                return all
            }
            #expect(completions.filter { !$0.replayed }.count == 1)
            #expect(Set(completions.map(\.result)).count == 1)
            #expect(try await ledger.mappingCount(siteId: "site-a") == 30)
            #expect(try await ledger.totals(migrationId: "m1").invariantHolds)
        }
    }

    @Test("a later migration on the same site sees what an earlier one mapped", arguments: Backend.allCases)
    func laterMigrationSeesEarlierMappings(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let ann = People.agent("ann", "ann@example.com")
            let bob = People.customer("bob", "bob@example.com")
            let gone = People.deleted("gone")
            let bad = People.customer("bad", "not-an-email")
            // Migrating in advance: no projects, users and customers.
            try await prepareBatches(ledger, "advance", [ann, bob, gone, bad], batchSize: 500, projects: [])
            let first = try await ledger.loadIdentityBatch(migrationId: "advance", batchId: "identities-0")
            let firstMappings = first.identities.map { identity in
                identity.userKey == "bad"
                    ? IdentityMapping(
                        userKey: "bad", outcome: .rejected, reason: DecisionReason.malformedEmail.rawValue)
                    : createdMapping(identity)
            }
            _ = try await ledger.completeBatch(
                migrationId: "advance", batchId: "identities-0", mappings: firstMappings, result: [1])

            let prior = try await ledger.priorMappings(
                siteId: "site-a", userKeys: ["ann", "bob", "gone", "bad", "new"])
            #expect(
                prior == [
                    "ann": PriorMapping(accountId: "acc-ann", accountType: .atlassian),
                    "bob": PriorMapping(accountId: "acc-bob", accountType: .customer),
                ])
            #expect(try await ledger.priorMappings(siteId: "site-b", userKeys: ["ann", "bob"]).isEmpty)

            // The data migration: ann and bob are already migrated; bad was fixed at the source.
            let fixed = People.customer("bad", "bad@example.com")
            let carl = People.customer("carl", "carl@example.com")
            try await prepareBatches(ledger, "data", [ann, bob, fixed, carl], batchSize: 500)
            let second = try await ledger.loadIdentityBatch(migrationId: "data", batchId: "identities-0")
            let secondMappings = second.identities.map { identity -> IdentityMapping in
                switch identity.userKey {
                case "ann", "bob": return IdentityMapping(userKey: identity.userKey, outcome: .alreadyMigrated)
                case "bad":
                    return IdentityMapping(
                        userKey: "bad", outcome: .linked, accountId: "acc-fixed", accountType: .customer)
                default: return createdMapping(identity)
                }
            }
            _ = try await ledger.completeBatch(
                migrationId: "data", batchId: "identities-0", mappings: secondMappings, result: [2])

            let annRow = try #require(try await ledger.mapping(siteId: "site-a", userKey: "ann"))
            #expect(annRow.migrationId == "advance")
            #expect(annRow.outcome == .created)
            let badRow = try #require(try await ledger.mapping(siteId: "site-a", userKey: "bad"))
            #expect(badRow.migrationId == "data")
            #expect(badRow.outcome == .linked)
            #expect(badRow.accountId == "acc-fixed")
            #expect(try await ledger.mappingCount(siteId: "site-a") == 5)

            let totals = try await ledger.totals(migrationId: "data")
            #expect(totals.invariantHolds)
            #expect(totals.overall.alreadyMigrated == 2)
            #expect(totals.overall.linked == 1)
            #expect(totals.overall.created == 1)
            #expect(try await ledger.totals(migrationId: "advance").overall.rejected == 1)
        }
    }

    @Test("the move to the migrate phase is won exactly once by 20 concurrent callers", arguments: Backend.allCases)
    func phaseAdvanceIsWonOnce(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            _ = try await ledger.createOrResumeMigration(definition("m1", batchSize: 7))
            let people = (0..<50).map { People.customer("c\($0)", "c\($0)@example.com") }
            try await ledger.claimScope(migrationId: "m1", projectId: Projects.helpdesk.id, identities: people)
            #expect(try await ledger.advanceToMigratePhase(migrationId: "m1") == .projectsPending(1))
            _ = try await ledger.recordProjectExpanded(
                migrationId: "m1", projectId: Projects.helpdesk.id, issuesScanned: 1
            ) { _ in [] }

            let answers = try await withThrowingTaskGroup(of: PhaseAdvance.self) { group in
                for _ in 0..<20 { group.addTask { try await ledger.advanceToMigratePhase(migrationId: "m1") } }
                var all: [PhaseAdvance] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            let cut = BatchCut(batchCount: 8, identityCount: 50)
            #expect(answers.filter(\.won) == [.advanced(cut)])
            #expect(answers.filter { !$0.won }.allSatisfy { $0 == .alreadyAdvanced(cut) })
            #expect(answers.count == 20)
            #expect(try await ledger.batches(migrationId: "m1").count == 8)
            #expect(try await ledger.migration("m1")?.phase == .migrate)
        }
    }

    @Test("totals satisfy the invariant, and what is missing is named when they do not", arguments: Backend.allCases)
    func totalsAndMissingWork(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            _ = try await ledger.createOrResumeMigration(
                definition("m1", projects: [Projects.helpdesk, Projects.facilities], batchSize: 4))
            let help =
                (0..<6).map { People.customer("h\($0)", "h\($0)@example.com") } + [People.agent("agent", "a@x.io")]
            let fac = [help[0], help[1], People.deleted("gone"), People.customer("f0", "f0@example.com")]
            try await ledger.claimScope(migrationId: "m1", projectId: Projects.helpdesk.id, identities: help)
            try await ledger.claimScope(migrationId: "m1", projectId: Projects.facilities.id, identities: fac)
            for project in [Projects.helpdesk, Projects.facilities] {
                _ = try await ledger.recordProjectExpanded(
                    migrationId: "m1", projectId: project.id, issuesScanned: 1
                ) { _ in [] }
            }
            guard case .advanced(let cut) = try await ledger.advanceToMigratePhase(migrationId: "m1") else {
                Issue.record("the advance must win")
                return
            }
            #expect(cut.identityCount == 9)
            let batches = try await ledger.batches(migrationId: "m1")
            let left = try #require(batches.last)
            try await completeAllBatches(ledger, "m1", except: [left.batchId])

            let partial = try await ledger.totals(migrationId: "m1")
            #expect(partial.invariantHolds == false)
            #expect(partial.overall.inScope == 9)
            #expect(partial.overall.pending == left.identityCount)
            try await ledger.recordFailedAttempt(
                migrationId: "m1", batchId: left.batchId, error: "site 503\nretry later")
            let failed = try await ledger.recordFailedAttempt(
                migrationId: "m1", batchId: left.batchId, error: "site 503")
            #expect(failed.attempts == 2)
            #expect(try await ledger.parkBatch(migrationId: "m1", batchId: left.batchId, error: "retries exhausted"))
            #expect(try await ledger.batches(migrationId: "m1", state: .parked).map(\.batchId) == [left.batchId])

            let missing = try await ledger.missingWork(migrationId: "m1")
            #expect(missing.batches.map(\.batchId) == [left.batchId])
            #expect(missing.batches.first?.state == .parked)
            #expect(missing.batches.first?.lastError == "retries exhausted")
            let leftContent = try await ledger.loadIdentityBatch(migrationId: "m1", batchId: left.batchId)
            #expect(missing.undecided.map(\.userKey) == leftContent.identities.map(\.userKey).sorted())
            #expect(missing.undecided.allSatisfy { $0.batchId == left.batchId })
            #expect(missing.unmapped.isEmpty)

            #expect(try await ledger.requeueBatch(migrationId: "m1", batchId: left.batchId))
            try await completeAllBatches(ledger, "m1")
            let complete = try await ledger.totals(migrationId: "m1")
            #expect(complete.invariantHolds)
            #expect(complete.byCategory[.customer] == tally(inScope: 7, created: 7))
            #expect(complete.byCategory[.licensedUser] == tally(inScope: 1, created: 1))
            #expect(complete.byCategory[.former] == tally(inScope: 1, former: 1))
            #expect(complete.byProject[Projects.helpdesk.id]?[.customer] == tally(inScope: 6, created: 6))
            #expect(complete.byProject[Projects.facilities.id]?[.former] == tally(inScope: 1, former: 1))
            #expect(complete.byProject[Projects.facilities.id]?[.customer] == tally(inScope: 3, created: 3))
            #expect(try await ledger.missingWork(migrationId: "m1").isEmpty)
            #expect(try await ledger.batch(migrationId: "m1", batchId: left.batchId)?.attempts == 3)
        }
    }
}

private func tally(inScope: Int, created: Int = 0, former: Int = 0) -> OutcomeTally {
    var tally = OutcomeTally()
    tally.inScope = inScope
    tally.created = created
    tally.former = former
    return tally
}

/// Creates a migration with one project (or none), claims `people` and cuts the batches.
private func prepareBatches(
    _ ledger: Ledger, _ migrationId: String, _ people: [ServerIdentity], batchSize: Int,
    projects: [SelectedProject] = [Projects.helpdesk]
) async throws {
    _ = try await ledger.createOrResumeMigration(definition(migrationId, projects: projects, batchSize: batchSize))
    try await ledger.claimScope(migrationId: migrationId, projectId: projects.first?.id, identities: people)
    for project in projects {
        _ = try await ledger.recordProjectExpanded(migrationId: migrationId, projectId: project.id, issuesScanned: 0) {
            _ in []
        }
    }
    #expect(try await ledger.advanceToMigratePhase(migrationId: migrationId).won)
}

/// The batch is still pending with no attempt recorded, and nothing of it reached the mapping or the scope.
private func expectUntouched(_ ledger: Ledger, _ migrationId: String, _ batchId: String) async throws {
    let batch = try #require(try await ledger.batch(migrationId: migrationId, batchId: batchId))
    #expect(batch.state == .pending)
    #expect(batch.attempts == 0)
    #expect(try await ledger.mappingCount(siteId: "site-a") == 0)
    #expect(try await ledger.totals(migrationId: migrationId).overall.accountedFor == 0)
}

/// Whether the scope's rows have a foreign key to their migration.
private func scopeReferencesMigrations(_ ledger: Ledger) async throws -> Bool {
    try await ledger.database.transaction("keys", readOnly: true) { session in
        switch session.dialect {
        case .sqlite:
            return try await session.query("PRAGMA foreign_key_list(ledger_scope)", []).contains {
                try $0.text(2) == "ledger_migrations"
            }
        case .postgres:
            return try await session.first(
                """
                SELECT COUNT(*) FROM pg_constraint
                WHERE conrelid = 'ledger_scope'::regclass AND confrelid = 'ledger_migrations'::regclass
                """, [])?.int(0) == 1
        }
    }
}
