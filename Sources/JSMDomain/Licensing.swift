/// Which groups make their members licensed users, worked out once from the group tables.
///
/// A user is licensed when, in its resolved directory, it belongs directly or through nested groups
/// to a group with application access (`licenserolesgroup`) or with `ADMINISTER` / `SYSTEM_ADMIN`
/// (`globalpermissionentry`). Groups are few compared with users, so this is precomputed and each
/// user then needs only a look at its direct groups.
public struct LicensingCatalog: Sendable {
    /// The global permissions that make a group's members licensed.
    public static let licensingPermissions: Set<String> = ["ADMINISTER", "SYSTEM_ADMIN"]

    /// Groups (by id) that are licensed directly or nested, at any depth, inside a licensed group.
    let licensingGroupIds: Set<Int64>
    /// Groups whose chain of parents contains a cycle of groups.
    let groupsUnderCycle: Set<Int64>
    /// Every group, by id.
    let groupsById: [Int64: GroupRow]
    /// The groups each group is nested in directly (same directory), by child id.
    let parentsByGroup: [Int64: [Int64]]
    /// Rows of the group tables that do not fit (nested memberships naming missing groups), with no
    /// user key; reported once.
    public let anomalies: [SourceAnomaly]

    /// Builds the catalog.
    ///
    /// - Parameter groupMemberships: the `GROUP_GROUP` memberships; other rows are ignored.
    public init(
        groups: [GroupRow], groupMemberships: [MembershipRow], licenseRoleGroups: [LicenseRoleGroupRow],
        globalPermissions: [GlobalPermissionRow]
    ) {
        var groupsById: [Int64: GroupRow] = [:]
        for group in groups { groupsById[group.id] = group }
        var licensedNames = Set(licenseRoleGroups.map { $0.groupName.lowercased() })
        for entry in globalPermissions where Self.licensingPermissions.contains(entry.permission.uppercased()) {
            licensedNames.insert(entry.groupName.lowercased())
        }

        var anomalies: [SourceAnomaly] = []
        var children: [Int64: [Int64]] = [:]
        var parents: [Int64: [Int64]] = [:]
        var parentCount: [Int64: Int] = [:]
        for membership in groupMemberships where membership.type == .groupGroup {
            guard let parent = groupsById[membership.parentId], let child = groupsById[membership.childId],
                parent.directoryId == child.directoryId
            else {
                anomalies.append(
                    SourceAnomaly(
                        kind: .danglingMembership, userKey: nil,
                        detail: "cwd_membership \(membership.id) nests group \(membership.childId) "
                            + "in group \(membership.parentId): one of them is missing or in another directory"))
                continue
            }
            children[parent.id, default: []].append(child.id)
            parents[child.id, default: []].append(parent.id)
            parentCount[child.id, default: 0] += 1
        }

        // Licence flows from licensed groups down to the groups nested in them, through active groups.
        var licensing = Set<Int64>()
        var queue = groups.filter { $0.isActive && licensedNames.contains($0.lowerName) }.map(\.id)
        licensing.formUnion(queue)
        var head = 0
        while head < queue.count {  // bounded: each group enters the queue at most once
            let group = queue[head]
            head += 1
            for child in children[group] ?? [] where groupsById[child]?.isActive == true {
                if licensing.insert(child).inserted { queue.append(child) }
            }
        }

        // Peel groups with no unpeeled parent (Kahn); what remains sits on a cycle or below one.
        var remainingParents = parentCount
        var peel = groups.map(\.id).filter { (parentCount[$0] ?? 0) == 0 }
        var peeled = Set(peel)
        head = 0
        while head < peel.count {  // bounded: each group is peeled at most once
            let group = peel[head]
            head += 1
            for child in children[group] ?? [] {
                remainingParents[child, default: 0] -= 1
                if remainingParents[child] == 0, peeled.insert(child).inserted { peel.append(child) }
            }
        }
        self.groupsUnderCycle = Set(groupsById.keys).subtracting(peeled)
        self.licensingGroupIds = licensing
        self.groupsById = groupsById
        self.parentsByGroup = parents
        self.anomalies = anomalies
    }

    /// Whether membership of this group makes a user licensed.
    public func grantsLicence(groupId: Int64) -> Bool { licensingGroupIds.contains(groupId) }

    /// The active groups a user belongs to when it belongs directly to `direct`: those groups and
    /// every group they are nested in, at any depth, through active groups only (an inactive group
    /// passes nothing on). Cloud groups do not nest, so a group migration gives the user a direct
    /// membership of each. Sorted by lower-cased name, then id; a cycle of groups is walked once.
    public func groupsIncludingAncestors(of direct: [Int64]) -> [GroupRow] {
        var seen = Set<Int64>()
        var queue = direct.filter { groupsById[$0]?.isActive == true && seen.insert($0).inserted }
        var head = 0
        while head < queue.count {  // bounded: each group enters the queue at most once
            let group = queue[head]
            head += 1
            for parent in parentsByGroup[group] ?? [] where groupsById[parent]?.isActive == true {
                if seen.insert(parent).inserted { queue.append(parent) }
            }
        }
        return queue.compactMap { groupsById[$0] }.sorted { ($0.lowerName, $0.id) < ($1.lowerName, $1.id) }
    }
}
