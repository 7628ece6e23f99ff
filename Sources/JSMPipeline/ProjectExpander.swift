import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import JSMSource
import Logging

/// `ExpandProject` for one project: read the identities its issues reference from the source,
/// claim the in-scope ones for the migration (idempotently), and record the project's counts once.
struct ProjectExpander: Sendable {
    let ledger: Ledger
    let source: JiraSource
    let classifier: IdentityClassifier
    let workerId: String
    let logger: Logger

    /// The reply for `scope`; `replayed` when the project had been expanded before.
    func process(_ scope: JSMProjectScope, attempt: UInt32) async throws -> JSMProjectResult {
        let migrationId = scope.header.migrationID
        guard let migration = try await ledger.migration(migrationId) else {
            throw RPCEnvelope.Unusable(reason: .invalidMessage, detail: "no migration \(migrationId) in the ledger")
        }
        guard migration.projectIds.contains(scope.projectID) else {
            throw RPCEnvelope.Unusable(
                reason: .invalidMessage, detail: "project \(scope.projectID) is not selected in \(migrationId)")
        }
        let project = SelectedProject(
            id: scope.projectID, key: scope.projectKey, name: scope.projectName,
            projectType: scope.serviceProject ? SelectedProject.serviceProjectType : nil)
        var issues: Int64 = 0
        if try await ledger.pendingProjects(migrationId: migrationId).contains(project.id) {
            try await claimReferences(of: project, migration: migration)
            issues = try await source.issueCount(of: project)
        }
        let header = scope.header
        let workerId = self.workerId
        let record = try await ledger.recordProjectExpanded(
            migrationId: migrationId, projectId: project.id, issuesScanned: issues
        ) { expansion in
            var result = JSMProjectResult()
            result.header = header
            result.projectID = expansion.projectId
            result.projectKey = project.key
            result.referenced = JSMIdentityClassCounts(expansion.referenced)
            result.claimed = JSMIdentityClassCounts(expansion.claimed)
            result.issuesScanned = UInt64(max(0, expansion.issuesScanned))
            result.attempt = attempt
            result.workerID = workerId
            return try result.serializedBytes()
        }
        var result = try JSMProjectResult(serializedBytes: record.result)
        if record.replayed {
            result.replayed = true
            result.attempt = attempt
            result.workerID = workerId
        }
        return result
    }

    /// Streams the project's references, classifies them in chunks and claims the in-scope ones.
    private func claimReferences(of project: SelectedProject, migration: MigrationRecord) async throws {
        let selection = try ScopeSelection(options: migration.scope, projects: [project])
        var keys = Set<String>()
        for try await reference in source.relatedIdentities(of: project) { keys.insert(reference.userKey) }
        let ordered = keys.sorted()
        for slice in ordered.chunked(JiraSource.maximumKeysPerLookup) {
            let chunk = Array(slice)
            let classified = try await source.classify(userKeys: chunk, classifier: classifier)
            let inScope = classified.map(\.identity).filter { selection.categoryWhenReferenced($0) != nil }
            if !inScope.isEmpty {
                try await ledger.claimScope(migrationId: migration.id, projectId: project.id, identities: inScope)
            }
        }
        logger.info(
            "project expanded",
            metadata: ["migration": "\(migration.id)", "project": "\(project.key)", "references": "\(keys.count)"])
    }
}

extension JSMIdentityClassCounts {
    init(_ counts: ScopeCounts) {
        self.init()
        customers = UInt64(max(0, counts.customers))
        licensedUsers = UInt64(max(0, counts.licensedUsers))
        formers = UInt64(max(0, counts.formers))
    }
}
