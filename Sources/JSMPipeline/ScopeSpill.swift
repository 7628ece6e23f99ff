import Foundation
import JSMDomain

/// A dry run's scope on disk: every in-scope identity the source yields, as it yields it, appended
/// to one of ``bucketCount`` files chosen by a hash of its normalised email (of its user key when it
/// has none). An email's identities, and every record of one user key, are in the same file, so
/// the dry run plans one file at a time and holds only that file's identities in memory.
///
/// A record is written per claim (one per selected project that references the identity, and one
/// for `all`); reading a file merges a key's records: the first record's category, every record's
/// project.
struct ScopeSpill {
    /// What the scratch directories' names start with, under their parent.
    static let directoryPrefix = "jsm-dry-run-"
    /// The file in a scratch directory that its dry run holds locked (`flock`) while it lives.
    static let ownerLockName = ScratchDirectory.ownerLockName

    /// The directory of the bucket files, removed by ``removeFiles()``.
    var directory: URL { scratch.url }
    /// Files the scope is spread over.
    var bucketCount: Int { files.bucketCount }
    private let scratch: ScratchDirectory
    private var files: BucketFiles

    /// A spill over `bucketCount` files in a new ``ScratchDirectory`` under `parent` (the system's
    /// temporary directory by default: `TMPDIR` chooses it).
    init(bucketCount: Int, parent: URL = FileManager.default.temporaryDirectory) throws {
        scratch = try ScratchDirectory(prefix: Self.directoryPrefix, parent: parent, purpose: "the dry run")
        files = BucketFiles(in: scratch.url, name: "bucket", bucketCount: bucketCount, purpose: "the dry run")
    }

    /// Removes the scratch directories under `parent` that no live dry run holds, and returns them
    /// (see ``ScratchDirectory/removeAbandoned(prefix:in:)``).
    static func removeAbandoned(in parent: URL = FileManager.default.temporaryDirectory) -> [URL] {
        ScratchDirectory.removeAbandoned(prefix: directoryPrefix, in: parent)
    }

    /// Appends a claim of `identity` as `category`, by `projectId` (`nil`: the `all` options).
    mutating func append(_ identity: ServerIdentity, as category: ScopeCategory, projectId: Int64?) throws {
        try files.append(to: Self.bucket(of: identity, among: bucketCount)) {
            Self.encode(identity, category: category, projectId: projectId, into: &$0)
        }
    }

    /// Writes every gathered record to its file; call before reading.
    mutating func flushAll() throws {
        try files.flushAll()
    }

    /// The identities of one bucket, each once, in user-key order, with the category of its first
    /// record and the projects of all of them.
    func identities(inBucket bucket: Int) throws -> [SpilledIdentity] {
        let bytes = try files.contents(of: bucket)
        var merged: [String: SpilledIdentity] = [:]
        var reader = Reader(bytes: bytes)
        while !reader.atEnd {
            guard let record = reader.record() else { throw files.damaged(bucket, at: reader.offset) }
            let key = record.identity.userKey
            if var known = merged[key] {
                if let project = record.projectId { known.projects.insert(project) }
                merged[key] = known
            } else {
                merged[key] = SpilledIdentity(
                    identity: record.identity, category: record.category,
                    projects: record.projectId.map { [$0] } ?? [])
            }
        }
        return merged.values.sorted { $0.identity.userKey < $1.identity.userKey }
    }

    /// Deletes the bucket files and their directory, then gives up the directory's lock.
    func removeFiles() {
        scratch.remove()
    }

    /// The bucket of an identity: every identity of an email, and every claim of a key, in one.
    static func bucket(of identity: ServerIdentity, among bucketCount: Int) -> Int {
        Int(BucketFiles.stableHash(identity.email?.value ?? identity.userKey) % UInt64(max(1, bucketCount)))
    }

    // MARK: Records

    /// A record: flags (raw email, directory, directory position, active, project), kind,
    /// category, then user key, user name, display name and raw email as length-prefixed UTF-8,
    /// then directory id, directory position and project id as 64-bit integers when present.
    static func encode(
        _ identity: ServerIdentity, category: ScopeCategory, projectId: Int64?, into bytes: inout [UInt8]
    ) {
        var flags: UInt8 = 0
        if identity.rawEmail != nil { flags |= 1 }
        if identity.directoryId != nil { flags |= 2 }
        if identity.directoryPosition != nil { flags |= 4 }
        if identity.isActive { flags |= 8 }
        if projectId != nil { flags |= 16 }
        bytes.append(flags)
        bytes.append(UInt8(IdentityKind.allCases.firstIndex(of: identity.kind) ?? 0))
        bytes.append(UInt8(ScopeCategory.allCases.firstIndex(of: category) ?? 0))
        for text in [identity.userKey, identity.userName, identity.displayName, identity.rawEmail] {
            guard let text else { continue }
            ScratchBytes.append(text, to: &bytes)
        }
        for value in [identity.directoryId, identity.directoryPosition.map(Int64.init), projectId] {
            if let value { ScratchBytes.append(UInt64(bitPattern: value), to: &bytes) }
        }
    }

    /// One decoded record.
    struct Record {
        let identity: ServerIdentity
        let category: ScopeCategory
        let projectId: Int64?
    }

    /// Reads records back, checking every length against the bytes left.
    struct Reader {
        private var bytes: ScratchBytes.Reader

        init(bytes: [UInt8]) { self.bytes = ScratchBytes.Reader(bytes: bytes) }

        var atEnd: Bool { bytes.atEnd }
        var offset: Int { bytes.offset }

        /// The next record, or `nil` when the bytes do not hold a whole one.
        mutating func record() -> Record? {
            guard let flags = bytes.byte(), let kind = bytes.byte().map(Int.init),
                let category = bytes.byte().map(Int.init), kind < IdentityKind.allCases.count,
                category < ScopeCategory.allCases.count, let userKey = bytes.text(), let userName = bytes.text(),
                let displayName = bytes.text()
            else { return nil }
            var rawEmail: String?
            if flags & 1 != 0 {
                guard let email = bytes.text() else { return nil }
                rawEmail = email
            }
            var integers: [Int64?] = []
            for flag: UInt8 in [2, 4, 16] {
                guard flags & flag != 0 else {
                    integers.append(nil)
                    continue
                }
                guard let value = bytes.integer() else { return nil }
                integers.append(Int64(bitPattern: value))
            }
            let identity = ServerIdentity(
                userKey: userKey, userName: userName, displayName: displayName, rawEmail: rawEmail,
                directoryId: integers[0], directoryPosition: integers[1].map(Int.init), isActive: flags & 8 != 0,
                kind: IdentityKind.allCases[kind])
            return Record(identity: identity, category: ScopeCategory.allCases[category], projectId: integers[2])
        }
    }
}

/// An in-scope identity read back from a ``ScopeSpill``.
struct SpilledIdentity: Sendable {
    let identity: ServerIdentity
    /// The category of its first claim.
    let category: ScopeCategory
    /// The selected projects that reference it.
    var projects: Set<Int64>
}
