import JSMDomain
import JSMLedger

/// One row of the report's totals: a category (or all of them) counted by outcome.
public struct ReportTally: Sendable, Hashable {
    /// What is counted: `customers`, `licensed_users`, `formers` or `all`.
    public let label: String
    /// The counts.
    public let tally: OutcomeTally
}

/// A selected project's line in the report: its key and name with the same columns as the
/// migration's totals, over the identities that project references.
public struct ProjectReport: Sendable, Hashable {
    /// The project as the ledger recorded it.
    public let project: LedgerProject
    /// Per category, then `all`.
    public let rows: [ReportTally]

    /// All categories of the project together.
    public var overall: OutcomeTally { rows.last?.tally ?? OutcomeTally() }
}

/// Everything `jsm-migrate report` shows about one migration, read from the ledger only: the
/// operator's answer to "where does it stand, and does it add up?" (design sections 2 and 8).
public struct MigrationReport: Sendable, Hashable {
    /// The labels of the categories, in report order, with the category they count.
    public static let categories: [(label: String, category: ScopeCategory)] = [
        ("customers", .customer), ("licensed_users", .licensedUser), ("formers", .former),
    ]

    /// The migration as the ledger holds it (state, phase, options).
    public let migration: MigrationRecord
    /// Per category, then `all`.
    public let totals: [ReportTally]
    /// One entry per selected project, by key.
    public let projects: [ProjectReport]
    /// Batches done (identities, groups and memberships).
    public let batchesDone: Int
    /// Batches in all states.
    public let batchesTotal: Int
    /// Batches parked or discarded: what keeps a migration from completing.
    public let batchesStuck: Int
    /// Decided identities with no mapping row on the site (the invariant wants 0).
    public let decidedWithoutMapping: Int
    /// Groups and memberships by outcome, when the migration has `--groups`.
    public let groupTotals: GroupPhaseTotals?
    /// Whether `in scope = created + linked + former + rejected + already_migrated` holds for the
    /// migration, every category and every project, with one mapping row per decided identity.
    public let invariantHolds: Bool

    /// The migration's totals over all categories.
    public var overall: OutcomeTally { totals.last?.tally ?? OutcomeTally() }

    /// Reads the report of `migrationId` from `ledger`.
    ///
    /// - Throws: ``PipelineError`` `invalidOptions` when the ledger has no such migration, so the
    ///   operator learns that the id is wrong rather than seeing a report of zeros.
    public static func load(from ledger: Ledger, migrationId: String) async throws -> MigrationReport {
        guard let migration = try await ledger.migration(migrationId) else {
            throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
        }
        let totals = try await ledger.totals(migrationId: migrationId)
        let projects = try await ledger.projects(migrationId: migrationId)
        let batches = try await ledger.batchStateCounts(migrationId: migrationId, method: nil)
        let groupTotals = migration.groups ? try await ledger.groupTotals(migrationId: migrationId) : nil
        return MigrationReport(
            migration: migration, totals: rows(totals.byCategory),
            projects: projects.map { project in
                ProjectReport(project: project, rows: rows(totals.byProject[project.id] ?? [:]))
            },
            batchesDone: batches[.done] ?? 0, batchesTotal: batches.values.reduce(0, +),
            batchesStuck: (batches[.parked] ?? 0) + (batches[.discarded] ?? 0),
            decidedWithoutMapping: totals.decidedWithoutMapping, groupTotals: groupTotals,
            invariantHolds: totals.invariantHolds && (groupTotals?.invariantHolds ?? true))
    }

    static func rows(_ tallies: [ScopeCategory: OutcomeTally]) -> [ReportTally] {
        let perCategory = categories.map { ReportTally(label: $0.label, tally: tallies[$0.category] ?? OutcomeTally()) }
        return perCategory + [
            ReportTally(label: "all", tally: perCategory.map(\.tally).reduce(OutcomeTally()) { $0.adding($1) })
        ]
    }
}

extension OutcomeTally {
    /// This tally plus `other`, category by category: the `all` rows of the report.
    func adding(_ other: OutcomeTally) -> OutcomeTally { self + other }
}
