/// The source rows of one user key, as a database adapter gathers them for a batch.
public struct UserSourceRows: Sendable, Hashable {
    /// The user key being classified (as referenced by data, or from `app_user`).
    public let userKey: String
    /// Its `app_user` row, if any.
    public let appUser: AppUserRow?
    /// Every `cwd_user` row with its lower-cased user name, in any directory.
    public let users: [UserRow]
    /// The `GROUP_USER` memberships whose `child_id` is one of `users`.
    public let memberships: [MembershipRow]

    /// Gathers the rows of one user key.
    public init(userKey: String, appUser: AppUserRow?, users: [UserRow], memberships: [MembershipRow]) {
        self.userKey = userKey
        self.appUser = appUser
        self.users = users
        self.memberships = memberships
    }
}

/// One classified identity and what was odd about its rows.
public struct ClassifiedIdentity: Sendable, Hashable {
    /// The identity, ready for the scope and the rules.
    public let identity: ServerIdentity
    /// Anomalies found in its rows; empty for a well-formed user.
    public let anomalies: [SourceAnomaly]
    /// Ids of the groups the identity belongs to directly in its resolved active directory (empty
    /// for formers): a group migration resolves them, with the groups they nest in, to cloud
    /// memberships (see ``LicensingCatalog/groupsIncludingAncestors(of:)``).
    public let directGroupIds: [Int64]

    /// Pairs an identity with its anomalies and direct groups.
    public init(identity: ServerIdentity, anomalies: [SourceAnomaly], directGroupIds: [Int64] = []) {
        self.identity = identity
        self.anomalies = anomalies
        self.directGroupIds = directGroupIds
    }
}

/// The classification of a whole in-memory source.
public struct ClassificationResult: Sendable {
    /// Every identity, by user key.
    public let identities: [String: ServerIdentity]
    /// Every anomaly, group-level ones first, then per identity in source order.
    public let anomalies: [SourceAnomaly]
}

/// Turns source rows into ``ServerIdentity`` values (design section 3).
///
/// - A user key with no `app_user` and no `cwd_user` row is `deleted`.
/// - A user name resolves to its first *active* directory by `directory_position` (ties by id).
/// - A user with rows only in inactive (or unknown) directories is `inactiveDirectory`.
/// - Otherwise it is `licensedUser` when a group it belongs to in the resolved directory grants a
///   licence (see ``LicensingCatalog``), else `customer`; a disabled user keeps its kind.
public struct IdentityClassifier: Sendable {
    /// Directories by id.
    let directoriesById: [Int64: DirectoryRow]
    /// Which groups grant a licence.
    public let licensing: LicensingCatalog

    /// Creates a classifier over the source's directories and licensing groups.
    public init(directories: [DirectoryRow], licensing: LicensingCatalog) {
        var byId: [Int64: DirectoryRow] = [:]
        for directory in directories { byId[directory.id] = directory }
        self.directoriesById = byId
        self.licensing = licensing
    }

    /// Creates a classifier from an in-memory snapshot.
    public init(snapshot: SourceSnapshot) {
        self.init(
            directories: snapshot.directories,
            licensing: LicensingCatalog(
                groups: snapshot.groups, groupMemberships: snapshot.memberships,
                licenseRoleGroups: snapshot.licenseRoleGroups, globalPermissions: snapshot.globalPermissions))
    }

    /// Classifies one user key from its rows.
    public func classify(_ rows: UserSourceRows) -> ClassifiedIdentity {
        let userKey = rows.userKey
        var anomalies: [SourceAnomaly] = []
        guard !rows.users.isEmpty else {
            return ClassifiedIdentity(
                identity: .deleted(userKey: userKey, userName: rows.appUser?.lowerUserName ?? ""), anomalies: [])
        }
        if rows.appUser == nil {
            anomalies.append(
                SourceAnomaly(
                    kind: .missingAppUser, userKey: userKey,
                    detail: "cwd_user '\(rows.users[0].lowerUserName)' has no app_user row"))
        }

        var active: (user: UserRow, directory: DirectoryRow)?
        var inactive: (user: UserRow, directory: DirectoryRow)?
        var unknown: UserRow?
        for user in rows.users {
            guard let directory = directoriesById[user.directoryId] else {
                anomalies.append(
                    SourceAnomaly(
                        kind: .unknownDirectory, userKey: userKey,
                        detail: "cwd_user \(user.id) is in directory \(user.directoryId), which cwd_directory lacks"))
                if unknown.map({ user.id < $0.id }) ?? true { unknown = user }
                continue
            }
            if directory.isActive {
                if active.map({ Self.comesFirst(directory, $0.directory) }) ?? true { active = (user, directory) }
            } else if inactive.map({ Self.comesFirst(directory, $0.directory) }) ?? true {
                inactive = (user, directory)
            }
        }

        let identity: ServerIdentity
        var directGroupIds: [Int64] = []
        if case (let user, let directory)? = active {
            let licensed = isLicensed(
                user, userKey: userKey, memberships: rows.memberships, groupIds: &directGroupIds,
                anomalies: &anomalies)
            identity = Self.identity(
                userKey, user, directory: directory, kind: licensed ? .licensedUser : .customer)
        } else if case (let user, let directory)? = inactive {
            identity = Self.identity(userKey, user, directory: directory, kind: .inactiveDirectory)
        } else {
            // Every row names an unknown directory: the user exists but no directory in use holds it.
            let user = unknown ?? rows.users[0]
            identity = ServerIdentity(
                userKey: userKey, userName: user.userName, displayName: user.displayName,
                rawEmail: user.emailAddress, directoryId: user.directoryId, directoryPosition: nil,
                isActive: user.isActive, kind: .inactiveDirectory)
        }
        if identity.rawEmail == nil {
            anomalies.append(
                SourceAnomaly(
                    kind: .missingEmail, userKey: userKey,
                    detail: "cwd_user '\(identity.userName)' in directory \(identity.directoryId ?? -1) has no email"))
        }
        return ClassifiedIdentity(identity: identity, anomalies: anomalies, directGroupIds: directGroupIds)
    }

    /// Classifies every identity of an in-memory source: each `app_user`, each `cwd_user` name
    /// without one, and each referenced user key the source does not know (as `deleted`).
    public static func classifyAll(_ snapshot: SourceSnapshot, referencedUserKeys: [String] = [])
        -> ClassificationResult
    {
        let classifier = IdentityClassifier(snapshot: snapshot)
        var usersByName: [String: [UserRow]] = [:]
        var userIds = Set<Int64>()
        for user in snapshot.users {
            usersByName[user.lowerUserName, default: []].append(user)
            userIds.insert(user.id)
        }
        var anomalies = classifier.licensing.anomalies
        var membershipsByUser: [Int64: [MembershipRow]] = [:]
        for membership in snapshot.memberships where membership.type == .groupUser {
            guard userIds.contains(membership.childId) else {
                anomalies.append(
                    SourceAnomaly(
                        kind: .danglingMembership, userKey: nil,
                        detail: "cwd_membership \(membership.id) puts user \(membership.childId), "
                            + "which cwd_user lacks, in group \(membership.parentId)"))
                continue
            }
            membershipsByUser[membership.childId, default: []].append(membership)
        }

        var identities: [String: ServerIdentity] = [:]
        func add(_ userKey: String, appUser: AppUserRow?, users: [UserRow]) {
            guard identities[userKey] == nil else { return }
            let memberships = users.flatMap { membershipsByUser[$0.id] ?? [] }
            let classified = classifier.classify(
                UserSourceRows(userKey: userKey, appUser: appUser, users: users, memberships: memberships))
            identities[userKey] = classified.identity
            anomalies.append(contentsOf: classified.anomalies)
        }
        var namesWithKey = Set<String>()
        for appUser in snapshot.appUsers {
            namesWithKey.insert(appUser.lowerUserName)
            add(appUser.userKey, appUser: appUser, users: usersByName[appUser.lowerUserName] ?? [])
        }
        for name in usersByName.keys.sorted() where !namesWithKey.contains(name) {
            add(name, appUser: nil, users: usersByName[name] ?? [])
        }
        for userKey in referencedUserKeys {
            add(userKey, appUser: nil, users: [])
        }
        return ClassificationResult(identities: identities, anomalies: anomalies)
    }

    /// Whether the user belongs, in its own directory, to a group that grants a licence; collects
    /// the ids of the groups it belongs to directly there into `groupIds`.
    private func isLicensed(
        _ user: UserRow, userKey: String, memberships: [MembershipRow], groupIds: inout [Int64],
        anomalies: inout [SourceAnomaly]
    ) -> Bool {
        var licensed = false
        for membership in memberships where membership.type == .groupUser && membership.childId == user.id {
            guard let group = licensing.groupsById[membership.parentId], group.directoryId == user.directoryId
            else {
                anomalies.append(
                    SourceAnomaly(
                        kind: .danglingMembership, userKey: userKey,
                        detail: "cwd_membership \(membership.id) names group \(membership.parentId), "
                            + "missing from directory \(user.directoryId)"))
                continue
            }
            if licensing.groupsUnderCycle.contains(group.id) {
                anomalies.append(
                    SourceAnomaly(
                        kind: .membershipCycle, userKey: userKey,
                        detail: "group '\(group.name)' (cwd_group \(group.id)) is nested in a cycle of groups"))
            }
            groupIds.append(group.id)
            if licensing.grantsLicence(groupId: group.id) { licensed = true }
        }
        return licensed
    }

    private static func comesFirst(_ lhs: DirectoryRow, _ rhs: DirectoryRow) -> Bool {
        (lhs.position, lhs.id) < (rhs.position, rhs.id)
    }

    private static func identity(
        _ userKey: String, _ user: UserRow, directory: DirectoryRow, kind: IdentityKind
    ) -> ServerIdentity {
        ServerIdentity(
            userKey: userKey, userName: user.userName, displayName: user.displayName, rawEmail: user.emailAddress,
            directoryId: directory.id, directoryPosition: directory.position, isActive: user.isActive, kind: kind)
    }
}
