import Foundation
import JSMDomain
import JSMLedger
import Testing

@testable import JSMPipeline

@Suite("verify: recounts from the source and the site, independently of the messages")
struct VerifyTests {
    @Test("a consistent migration passes every check", arguments: LedgerBackend.allCases)
    func consistentWorldPasses(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let verification = try await world.verify()
            #expect(verification.passed, "\(verification.rendered())")
            #expect(verification.mismatches.isEmpty && verification.skipped.isEmpty)
            #expect(Set(verification.checks.map(\.area)) == [.source, .ledger, .site])
            // One row per selected project, so a per-project difference has a line of its own.
            for project in world.projects {
                #expect(verification.checks.contains { $0.name.contains("project \(project.key) ") })
            }
            let mapped = try #require(verification.checks.first { $0.name == "site: mapped accounts exist" })
            #expect(Int(mapped.expected) ?? 0 > 0 && mapped.expected == mapped.found)
            #expect(verification.verdict.contains("everything matches"))
            #expect(verification.rendered().hasSuffix(verification.verdict + "\n"))
        }
    }

    @Test(
        "a migration with --customers all --users all passes: the recount streams every identity",
        arguments: LedgerBackend.allCases)
    func allOptionsPass(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend, scope: ScopeOptions(customers: .all, users: .all)) { world in
            let related = try await world.ledger.totals(migrationId: world.migrationId)
            let verification = try await world.verify()
            #expect(verification.passed, "\(verification.rendered())")
            let customers = try #require(verification.checks.first { $0.name == "source: in-scope customers" })
            // More customers than the projects reference: the `all` option took the other requesters too.
            let referenced = world.projects.compactMap { related.byProject[$0.id]?[.customer]?.inScope }.reduce(0, +)
            #expect(Int(customers.expected) ?? 0 > referenced)
        }
    }

    @Test(
        "an account missing on the site fails the site check and names the identity",
        arguments: LedgerBackend.allCases)
    func missingSiteAccountFails(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let mapping = try #require(
                try await world.ledger.accountMappings(migrationId: world.migrationId, limit: 100_000).first {
                    $0.outcome == .created
                })
            world.store.hide(accountId: try #require(mapping.accountId))
            let verification = try await world.verify()
            #expect(!verification.passed)
            #expect(verification.mismatches.map(\.name) == ["site: mapped accounts exist"])
            let check = try #require(verification.mismatches.first)
            #expect(Int(check.found) == (Int(check.expected) ?? 0) - 1)
            #expect(check.detail?.contains(mapping.userKey) == true)
            #expect(
                verification.verdict.contains("MISMATCH")
                    && verification.verdict.contains("site: mapped accounts exist"))
        }
    }

    @Test(
        "a mapping row removed from the ledger fails the ledger check and names the identity",
        arguments: LedgerBackend.allCases)
    func removedMappingFails(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let mapping = try #require(
                try await world.ledger.accountMappings(migrationId: world.migrationId, limit: 100_000).first)
            try await world.removeMapping(userKey: mapping.userKey)
            let verification = try await world.verify()
            #expect(!verification.passed)
            let check = try #require(
                verification.mismatches.first { $0.name == "ledger: one mapping row per decided identity" })
            #expect(check.found == "1 without")
            #expect(check.detail?.contains(mapping.userKey) == true)
            #expect(verification.mismatches.allSatisfy { $0.area == .ledger })
        }
    }

    @Test(
        "an in-scope identity the source gained after the migration fails the source checks",
        arguments: LedgerBackend.allCases)
    func unclaimedSourceIdentityFails(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let project = try #require(world.projects.first { $0.isServiceProject })
            try await world.addRequestingCustomer(userKey: "JIRAUSER990001", project: project)
            let verification = try await world.verify()
            #expect(!verification.passed)
            let names = Set(verification.mismatches.map(\.name))
            #expect(
                names == [
                    "source: in-scope customers", "source: in-scope user keys",
                    "source: project \(project.key) in scope (customers/licensed users/formers)",
                ])
            let customers = try #require(verification.mismatches.first { $0.name == "source: in-scope customers" })
            #expect(Int(customers.expected) == (Int(customers.found) ?? 0) + 1)
            let keys = try #require(verification.mismatches.first { $0.name == "source: in-scope user keys" })
            #expect(keys.detail?.contains("never claimed: JIRAUSER990001") == true)
        }
    }

    @Test("the built command exits 0 on a consistent migration and 1 once the site lost an account")
    func command() async throws {
        try await ReportWorldBuilder.withWorld(.sqlite) { world in
            let arguments = [
                "verify", "--ledger", world.ledgerLocation, "--migration", world.migrationId,
                "--source", "sqlite:" + world.sourcePath, "--site-url", world.site.baseURL,
            ]
            // verify's scratch files go to TMPDIR: a folder of the test's own, holding what a
            // killed verify leaves (its files and an owner lock nobody holds).
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)")
            let killed = scratch.appendingPathComponent(VerifyScratch.directoryPrefix + "killed")
            try FileManager.default.createDirectory(at: killed, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            try Data([1, 2, 3]).write(to: killed.appendingPathComponent("keys-0.bin"))
            try Data().write(to: killed.appendingPathComponent(ScratchDirectory.ownerLockName))
            let environment = ["JSM_SITE_TOKEN": world.site.apiToken, "TMPDIR": scratch.path]
            let passing = try await CommandRun.jsmMigrate(arguments, environment: environment)
            #expect(passing.status == 0, "\(passing.standardOutput)\(passing.standardError)")
            #expect(passing.standardOutput.contains("everything matches"))
            #expect(passing.standardError.contains("removed the scratch directories of verify runs"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
            #expect(
                !passing.standardOutput.contains(world.site.apiToken)
                    && !passing.standardError.contains(world.site.apiToken))

            let mapping = try #require(
                try await world.ledger.accountMappings(migrationId: world.migrationId, limit: 1).first)
            world.store.hide(accountId: try #require(mapping.accountId))
            let failing = try await CommandRun.jsmMigrate(arguments, environment: environment)
            #expect(failing.status == 1, "\(failing.standardOutput)\(failing.standardError)")
            #expect(failing.standardOutput.contains("MISMATCH"))
            #expect(failing.standardOutput.contains(mapping.userKey))
        }
    }

    @Test("a site without the local listing has the mapped accounts looked up in bulk, or is skipped above the limit")
    func siteWithoutListing() async throws {
        try await ReportWorldBuilder.withWorld(.sqlite) { world in
            let mappings = try await world.ledger.accountMappings(migrationId: world.migrationId, limit: 100_000)
            let absent = "/_local/v1/no-such-listing"
            let looked = try await SiteAudit.audit(
                ledger: world.ledger, migrationId: world.migrationId, site: world.site, listingPath: absent)
            #expect(looked.method == .accountLookups)
            #expect(looked.mappedAccounts == mappings.count && looked.foundAccounts == mappings.count)
            #expect(looked.matches)
            // Many small bulk requests, and requests larger than the site's page of 100 (read page by page).
            #expect(mappings.count > 150, "the world should map more accounts than one bulk page holds")
            // Across pages of mappings (13 rows) and scratch buckets (3) the answer is the same.
            for (size, page, buckets) in [(7, 10_000, 64), (150, 10_000, 64), (50, 13, 3)] {
                let inPieces = try await SiteAudit.audit(
                    ledger: world.ledger, migrationId: world.migrationId, site: world.site, bulkLookupSize: size,
                    listingPath: absent, mappingPageSize: page, scratchBuckets: buckets)
                #expect(inPieces == looked, "\(size) ids per request, \(page) mappings per page, \(buckets) buckets")
            }

            let lost = try #require(mappings.first { $0.outcome == .created })
            world.store.hide(accountId: try #require(lost.accountId))
            let missing = try await SiteAudit.audit(
                ledger: world.ledger, migrationId: world.migrationId, site: world.site, listingPath: absent)
            #expect(!missing.matches && missing.foundAccounts == mappings.count - 1)
            #expect(missing.missingUserKeys == [lost.userKey])
            let missingInPages = try await SiteAudit.audit(
                ledger: world.ledger, migrationId: world.migrationId, site: world.site, bulkLookupSize: 150,
                listingPath: absent, mappingPageSize: 13, scratchBuckets: 3)
            #expect(missingInPages == missing)
            let listedMissing = try await SiteAudit.audit(
                ledger: world.ledger, migrationId: world.migrationId, site: world.site)
            #expect(listedMissing.method == .localListing && listedMissing.missingUserKeys == [lost.userKey])
            #expect(listedMissing.foundAccounts == mappings.count - 1 && !listedMissing.matches)

            // Two accounts of one (email, type): the larger id is the duplicate, whatever order the answers come in.
            let customers = mappings.filter { $0.accountType == .customer && $0.accountId != lost.accountId }
            let first = try #require(customers.first?.accountId)
            let second = try #require(customers.last?.accountId)
            let shared = try #require(try await world.store.inner.account(withId: first)?.email)
            world.store.showEmail(shared, forAccountId: second)
            // The two accounts' mappings are far apart in key order: on different pages of 13.
            for (size, page) in [(SiteAudit.bulkLookupSize, 10_000), (7, 10_000), (7, 13)] {
                let doubled = try await SiteAudit.audit(
                    ledger: world.ledger, migrationId: world.migrationId, site: world.site, bulkLookupSize: size,
                    listingPath: absent, mappingPageSize: page, scratchBuckets: 3)
                #expect(doubled.duplicateAccounts == 1 && doubled.duplicateAccountIds == [max(first, second)])
                #expect(!doubled.matches)
            }
            // The listing names the same duplicate as the lookups, whatever order it lists them in.
            for (page, buckets) in [(10_000, 64), (13, 3)] {
                let listed = try await SiteAudit.audit(
                    ledger: world.ledger, migrationId: world.migrationId, site: world.site, mappingPageSize: page,
                    scratchBuckets: buckets)
                #expect(listed.method == .localListing && listed.duplicateAccounts == 1)
                #expect(listed.duplicateAccountIds == [max(first, second)])
            }

            let skipped = try await SiteAudit.audit(
                ledger: world.ledger, migrationId: world.migrationId, site: world.site,
                lookupLimit: mappings.count - 1, listingPath: absent)
            guard case .skipped(let reason) = skipped.method else {
                Issue.record("expected the site check to be skipped, got \(skipped.method)")
                return
            }
            #expect(reason.contains("\(mappings.count) accounts"))
            #expect(!skipped.matches, "a skipped check never claims the site matches")
            let checks = MigrationVerification.siteChecks(skipped)
            #expect(checks.map(\.status) == [.skipped])
            let verification = MigrationVerification(checks: checks)
            #expect(!verification.passed && verification.verdict.contains("NOT verified"))
        }
    }
}
