import JSMDomain
import JSMLedger
import JSMSource
import Logging

/// One line of `verify`'s table: what was compared, what the independent count expects, what was
/// found, and whether they agree.
public struct VerificationCheck: Sendable, Hashable {
    /// Where a check looks.
    public enum Area: String, Sendable, Hashable {
        /// The source database, recounted.
        case source
        /// The ledger's own bookkeeping.
        case ledger
        /// The cloud site.
        case site
    }

    /// How a check ended.
    public enum Status: String, Sendable, Hashable {
        /// Expected and found agree.
        case ok
        /// They do not.
        case mismatch = "MISMATCH"
        /// The check could not run; the verdict does not claim it matches.
        case skipped = "SKIPPED"
    }

    /// Where it looks.
    public let area: Area
    /// A name an operator can search for, e.g. `source: in-scope customers`.
    public let name: String
    /// The independent figure.
    public let expected: String
    /// The figure found.
    public let found: String
    /// The outcome.
    public let status: Status
    /// What differs (first few user keys, never emails), or why it was skipped.
    public let detail: String?

    /// Creates a check whose status follows from `matches`.
    public init(_ area: Area, _ name: String, expected: String, found: String, matches: Bool, detail: String? = nil) {
        self.area = area
        self.name = name
        self.expected = expected
        self.found = found
        status = matches ? .ok : .mismatch
        self.detail = matches ? nil : detail
    }

    /// Creates a skipped check.
    public init(skipped area: Area, _ name: String, reason: String) {
        self.area = area
        self.name = name
        expected = "-"
        found = "-"
        status = .skipped
        detail = reason
    }
}

/// `jsm-migrate verify`: recounts a migration from the source database and the cloud site,
/// independently of the messages and the aggregator, and says whether they agree with the ledger.
public struct MigrationVerification: Sendable {
    /// The checks, in table order.
    public let checks: [VerificationCheck]

    /// The checks that did not match.
    public var mismatches: [VerificationCheck] { checks.filter { $0.status == .mismatch } }
    /// The checks that did not run.
    public var skipped: [VerificationCheck] { checks.filter { $0.status == .skipped } }
    /// Whether every check ran and matched: the only case `verify` exits 0.
    public var passed: Bool { mismatches.isEmpty && skipped.isEmpty }

    /// One line: everything matches, or what does not.
    public var verdict: String {
        if !mismatches.isEmpty {
            return "verify: MISMATCH in \(mismatches.count) check(s): "
                + mismatches.map(\.name).joined(separator: "; ")
        }
        if !skipped.isEmpty {
            return "verify: no mismatch found, but NOT verified: " + skipped.map(\.name).joined(separator: "; ")
                + " skipped"
        }
        return "verify: everything matches: the source recount, the ledger and the site agree"
    }

    /// How many sample user keys a check names.
    public static let sampleSize = 5

    /// Runs every check of `migrationId`.
    ///
    /// - Throws: ``PipelineError`` `invalidOptions` when the ledger has no such migration; errors
    ///   of the source or the site when they cannot be read at all.
    public static func verify(
        ledger: Ledger, migrationId: String, source: JiraSource, site: SiteLocation,
        logger: Logger = Logger(label: "jsm.verify")
    ) async throws -> MigrationVerification {
        guard let migration = try await ledger.migration(migrationId) else {
            throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
        }
        var checks: [VerificationCheck] = []
        let totals = try await ledger.totals(migrationId: migrationId)
        let projects = try await ledger.projects(migrationId: migrationId)

        // (a) The source, recounted with the domain's scope rules, and compared key by key with the
        // ledger's scope on disk (see ``VerifyScratch``).
        let (recount, keys) = try await VerifyScratch.with(
            abandoned: { removed in
                logger.notice(
                    "removed the scratch directories of verify runs that ended without removing them",
                    metadata: ["verify.removed": "\(removed.map(\.path))"])
            }
        ) { scratch in
            var keys = scratch.records("keys")
            let recount = try await ScopeRecount.recount(
                source: source, options: migration.scope, projectIds: migration.projectIds, into: &keys)
            return (recount, try await compareKeys(ledger: ledger, migrationId: migrationId, keys: &keys))
        }
        checks.append(
            VerificationCheck(
                .source, "source: selected projects exist", expected: "\(migration.projectIds.count)",
                found: "\(migration.projectIds.count - recount.missingProjects.count)",
                matches: recount.missingProjects.isEmpty,
                detail: "the source has no project with id "
                    + recount.missingProjects.map(String.init).joined(separator: ", ")))
        let counts = keys.sourceCounts
        for (label, category, count) in [
            ("customers", ScopeCategory.customer, counts.customers),
            ("licensed users", .licensedUser, counts.licensedUsers), ("formers", .former, counts.formers),
        ] {
            let claimed = totals.byCategory[category]?.inScope ?? 0
            checks.append(
                VerificationCheck(
                    .source, "source: in-scope \(label)", expected: "\(count)", found: "\(claimed)",
                    matches: count == claimed))
        }
        for project in projects {
            let expected = recount.perProject[project.id] ?? ScopeCounts()
            let ledgerTallies = totals.byProject[project.id] ?? [:]
            let found = ScopeCounts(
                customers: ledgerTallies[.customer]?.inScope ?? 0,
                licensedUsers: ledgerTallies[.licensedUser]?.inScope ?? 0,
                formers: ledgerTallies[.former]?.inScope ?? 0)
            checks.append(
                VerificationCheck(
                    .source, "source: project \(project.key) in scope (customers/licensed users/formers)",
                    expected: describe(expected), found: describe(found), matches: expected == found))
        }
        checks.append(keys.check)

        // (b) The ledger's own bookkeeping.
        let missing = try await ledger.missingWork(migrationId: migrationId, limit: sampleSize)
        let overall = totals.byCategory.values.reduce(OutcomeTally()) { $0.adding($1) }
        let unbalanced =
            MigrationReport.categories.filter { !(totals.byCategory[$0.category]?.balances ?? true) }.map(\.label)
            + projects.filter { project in
                !(totals.byProject[project.id]?.values.allSatisfy(\.balances) ?? true)
            }.map { "project \($0.key)" }
        checks.append(
            VerificationCheck(
                .ledger, "ledger: in scope = created + linked + former + rejected + already_migrated",
                expected: "\(overall.inScope)", found: "\(overall.accountedFor)", matches: unbalanced.isEmpty,
                detail: "does not balance for " + unbalanced.joined(separator: ", ")
                    + (missing.undecided.isEmpty
                        ? "" : "; undecided: " + missing.undecided.map(\.userKey).joined(separator: ", "))))
        checks.append(
            VerificationCheck(
                .ledger, "ledger: one mapping row per decided identity", expected: "0 without",
                found: "\(totals.decidedWithoutMapping) without", matches: totals.decidedWithoutMapping == 0,
                detail: "decided without a mapping row: " + missing.unmapped.joined(separator: ", ")))
        let batches = try await ledger.batchStateCounts(migrationId: migrationId)
        let batchTotal = batches.values.reduce(0, +)
        let ended = (batches[.done] ?? 0) + (batches[.discarded] ?? 0)
        checks.append(
            VerificationCheck(
                .ledger, "ledger: identity batches done (or discarded)", expected: "\(batchTotal)", found: "\(ended)",
                matches: ended == batchTotal && migration.phase == .migrate,
                detail: migration.phase == .expand
                    ? "the migration is still in its expand phase"
                    : "not done: "
                        + missing.batches.map { "\($0.batchId) (\($0.state.rawValue))" }.joined(separator: ", ")))

        // (c) The cloud site.
        let audit = try await SiteAudit.audit(ledger: ledger, migrationId: migrationId, site: site, logger: logger)
        checks += siteChecks(audit)
        if migration.groups {
            checks += try await groupChecks(ledger: ledger, migrationId: migrationId, site: site, logger: logger)
        }
        return MigrationVerification(checks: checks)
    }

    /// With `--groups`: both group invariants and every group batch done in the ledger, and every
    /// migrated group present on the site under its recorded id (groups are few: one lookup each,
    /// at most 10,000; memberships are not listed back from the site).
    static func groupChecks(ledger: Ledger, migrationId: String, site: SiteLocation, logger: Logger) async throws
        -> [VerificationCheck]
    {
        let totals = try await ledger.groupTotals(migrationId: migrationId)
        var checks = [
            VerificationCheck(
                .ledger, "ledger: groups in scope = created + reused + already_migrated + rejected",
                expected: "\(totals.groups.inScope)", found: "\(totals.groups.accountedFor)",
                matches: totals.groups.balances),
            VerificationCheck(
                .ledger,
                "ledger: memberships in scope = added + already_member + already_migrated + skipped + rejected",
                expected: "\(totals.memberships.inScope)", found: "\(totals.memberships.accountedFor)",
                matches: totals.memberships.balances),
        ]
        var batchesTotal = 0
        var batchesDone = 0
        for method in [LedgerBatch.groupMethod, LedgerBatch.membershipMethod] {
            let states = try await ledger.batchStateCounts(migrationId: migrationId, method: method)
            batchesTotal += states.values.reduce(0, +)
            batchesDone += states[.done] ?? 0
        }
        checks.append(
            VerificationCheck(
                .ledger, "ledger: group and membership batches done", expected: "\(batchesTotal)",
                found: "\(batchesDone)", matches: batchesDone == batchesTotal))
        let lookupLimit = 10_000
        let groups = try await ledger.groupRecords(migrationId: migrationId, limit: lookupLimit + 1)
            .filter { $0.cloudGroupId != nil }
        guard groups.count <= lookupLimit else {
            checks.append(
                VerificationCheck(
                    .site, "site: migrated groups exist", expected: "\(groups.count)+", found: "not checked",
                    matches: false, detail: "more than \(lookupLimit) groups: the site check was skipped"))
            return checks
        }
        var absent: [String] = []
        try await site.withSite(logger: logger) { adapter in
            for group in groups where try await adapter.group(named: group.lowerName)?.groupId != group.cloudGroupId {
                absent.append(group.lowerName)
            }
        }
        checks.append(
            VerificationCheck(
                .site, "site: migrated groups exist", expected: "\(groups.count)",
                found: "\(groups.count - absent.count)",
                matches: absent.isEmpty, detail: "missing or another id: " + absent.prefix(20).joined(separator: ", ")))
        return checks
    }

    static func describe(_ counts: ScopeCounts) -> String {
        "\(counts.customers)/\(counts.licensedUsers)/\(counts.formers)"
    }

    /// The recount's keys and the ledger's scope, compared.
    struct KeyComparison {
        /// The recount's distinct keys per category (a key counts in the first category it came in).
        var sourceCounts = ScopeCounts()
        /// The ledger's scope rows.
        var claimed = 0
        var neverClaimed = 0
        var neverClaimedKeys = SmallestValues(limit: sampleSize)
        var unexpected = 0
        var unexpectedKeys = SmallestValues(limit: sampleSize)
        var otherCategory = 0
        var otherCategoryKeys = SmallestValues(limit: sampleSize)

        var check: VerificationCheck {
            var problems: [String] = []
            if neverClaimed > 0 {
                problems.append(
                    "\(neverClaimed) in the source's scope but never claimed: "
                        + neverClaimedKeys.values.joined(separator: ", "))
            }
            if unexpected > 0 {
                problems.append(
                    "\(unexpected) claimed but not in the source's scope: "
                        + unexpectedKeys.values.joined(separator: ", "))
            }
            if otherCategory > 0 {
                problems.append(
                    "\(otherCategory) claimed in another category: " + otherCategoryKeys.values.joined(separator: ", "))
            }
            return VerificationCheck(
                .source, "source: in-scope user keys", expected: "\(sourceCounts.total) keys", found: "\(claimed) keys",
                matches: problems.isEmpty, detail: problems.joined(separator: "; "))
        }
    }

    /// The side of the ledger's records in the keys ``compareKeys(ledger:migrationId:keys:)`` reads.
    static let ledgerSide: UInt8 = 1

    /// Adds the ledger's in-scope keys, page by page, to the recount's `keys`, then compares the
    /// two one bucket at a time.
    static func compareKeys(ledger: Ledger, migrationId: String, keys: inout KeyedRecords) async throws
        -> KeyComparison
    {
        var after: String? = nil
        let pageSize = 10_000
        // Bounded: each page starts after the last key of the previous one, and a short page ends it.
        while true {
            let page = try await ledger.scopeEntries(migrationId: migrationId, afterUserKey: after, limit: pageSize)
            for entry in page { try keys.append(entry.userKey, side: ledgerSide, entry.category.rawValue) }
            guard page.count == pageSize, let last = page.last?.userKey else { break }
            after = last
        }
        try keys.finish()
        var comparison = KeyComparison()
        for bucket in 0..<keys.bucketCount {
            for (key, records) in try keys.records(inBucket: bucket) {
                let recounted = try records.first { $0.side == ScopeRecount.sourceSide }.map(category)
                let claims = try records.filter { $0.side == ledgerSide }.map(category)
                comparison.claimed += claims.count
                if let recounted {
                    comparison.sourceCounts.add(recounted)
                    if claims.isEmpty {
                        comparison.neverClaimed += 1
                        comparison.neverClaimedKeys.offer(key)
                    }
                } else if !claims.isEmpty {
                    comparison.unexpected += claims.count
                    comparison.unexpectedKeys.offer(key)
                }
                if let recounted, claims.contains(where: { $0 != recounted }) {
                    comparison.otherCategory += 1
                    comparison.otherCategoryKeys.offer(key)
                }
            }
        }
        return comparison
    }

    private static func category(_ record: KeyedRecords.Record) throws -> ScopeCategory {
        guard let category = record.fields.first.flatMap(ScopeCategory.init(rawValue:)) else {
            throw PipelineError(.invalidState, "verify's scratch record of \(record.key) has no category")
        }
        return category
    }

    static func siteChecks(_ audit: SiteAudit) -> [VerificationCheck] {
        if case .skipped(let reason) = audit.method {
            return [VerificationCheck(skipped: .site, "site: mapped accounts exist", reason: reason)]
        }
        var checks = [
            VerificationCheck(
                .site, "site: mapped accounts exist", expected: "\(audit.mappedAccounts)",
                found: "\(audit.foundAccounts)", matches: audit.foundAccounts == audit.mappedAccounts,
                detail: "\(audit.mappedAccounts - audit.foundAccounts) mapped to an account the site lacks: "
                    + audit.missingUserKeys.joined(separator: ", ")),
            VerificationCheck(
                .site, "site: mapped account types match", expected: "\(audit.foundAccounts)",
                found: "\(audit.foundAccounts - audit.wrongType)", matches: audit.wrongType == 0,
                detail: "mapped to an account of another type: " + audit.wrongTypeUserKeys.joined(separator: ", ")),
        ]
        let scope = audit.method == .localListing ? "" : " (among the mapped accounts)"
        checks.append(
            VerificationCheck(
                .site, "site: at most one account per (email, account type)\(scope)", expected: "0 duplicates",
                found: "\(audit.duplicateAccounts) duplicates", matches: audit.duplicateAccounts == 0,
                detail: "duplicate account ids: " + audit.duplicateAccountIds.joined(separator: ", ")))
        return checks
    }

    /// The table of checks and the verdict, for the terminal.
    public func rendered() -> String {
        var rows: [[String]] = []
        for check in checks {
            rows.append([check.name, check.expected, check.found, check.status == .ok ? "ok" : check.status.rawValue])
        }
        var lines = MigrationReport.table(headers: ["check", "expected", "found", "result"], rows: rows)
        let explained = checks.filter { $0.detail != nil }
        if !explained.isEmpty {
            lines.append("")
            for check in explained { lines.append("\(check.name): \(check.detail ?? "")") }
        }
        lines.append("")
        lines.append(verdict)
        return lines.joined(separator: "\n") + "\n"
    }
}
