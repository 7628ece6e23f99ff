import JSMDomain

extension JiraSource {
    /// How many issues a project has: the `issues_scanned` a project expansion reports.
    public func issueCount(of project: SelectedProject) async throws -> Int64 {
        let records = try await database.collect(
            SQLStatement("SELECT COUNT(*) FROM \(t("jiraissue")) WHERE project = $1", binds: [.integer(project.id)]),
            limit: 1)
        return records.first?.integer(0) ?? 0
    }
}
