import Foundation
import JSMDomain

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A dry run's scope on disk: every in-scope identity the source yields, as it yields it, appended
/// to one of ``bucketCount`` files chosen by a hash of its normalised email (of its user key when it
/// has none). An email's identities, and every record of one user key, are in the same file, so
/// the dry run plans one file at a time and holds only that file's identities in memory.
///
/// A record is written per claim (one per selected project that references the identity, and one
/// for `all`); reading a file merges a key's records: the first record's category, every record's
/// project.
struct ScopeSpill {
    /// Bytes a bucket gathers before it is appended to its file.
    static let bufferLimit = 32 << 10

    /// What the scratch directories' names start with, under their parent.
    static let directoryPrefix = "jsm-dry-run-"
    /// The file in a scratch directory that its dry run holds locked (`flock`) while it lives.
    static let ownerLockName = "owner.lock"

    /// The directory of the bucket files, removed by ``removeFiles()``.
    let directory: URL
    /// Files the scope is spread over.
    let bucketCount: Int
    private var buffers: [[UInt8]]
    private var handles: [FileHandle?]
    private let owner: OwnerLock

    /// A spill over `bucketCount` files in a new directory under `parent` (the system's temporary
    /// directory by default: `TMPDIR` chooses it).
    ///
    /// The directory holds an ``ownerLockName`` file that this spill keeps locked until
    /// ``removeFiles()``. It is built under a hidden name and renamed once locked, so a directory
    /// named ``directoryPrefix``... whose lock anyone can take belongs to a dry run that ended
    /// without removing it (killed, or its host lost power): ``removeAbandoned(in:)`` removes those.
    init(bucketCount: Int, parent: URL = FileManager.default.temporaryDirectory) throws {
        self.bucketCount = max(1, bucketCount)
        let name = Self.directoryPrefix + UUID().uuidString
        directory = parent.appendingPathComponent(name, isDirectory: true)
        let building = parent.appendingPathComponent(".\(name).partial", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: building, withIntermediateDirectories: true)
            owner = try OwnerLock(path: building.appendingPathComponent(Self.ownerLockName).path)
            try FileManager.default.moveItem(at: building, to: directory)
        } catch {
            try? FileManager.default.removeItem(at: building)
            throw PipelineError(
                .invalidState, "the dry run cannot create its scratch directory \(directory.path): \(error)")
        }
        buffers = Array(repeating: [], count: self.bucketCount)
        handles = Array(repeating: nil, count: self.bucketCount)
    }

    /// Removes the scratch directories under `parent` that no live dry run holds, and returns them.
    /// A directory without an ``ownerLockName`` file is left alone: it is not one this code made.
    static func removeAbandoned(in parent: URL = FileManager.default.temporaryDirectory) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
        var removed: [URL] = []
        for name in names where name.hasPrefix(directoryPrefix) {
            let candidate = parent.appendingPathComponent(name, isDirectory: true)
            guard let lock = OwnerLock(ifFreeAt: candidate.appendingPathComponent(ownerLockName).path) else {
                continue
            }
            // Removed while the lock is held, so no other dry run removes it at the same time.
            if (try? FileManager.default.removeItem(at: candidate)) != nil { removed.append(candidate) }
            lock.release()
        }
        return removed
    }

    /// Appends a claim of `identity` as `category`, by `projectId` (`nil`: the `all` options).
    mutating func append(_ identity: ServerIdentity, as category: ScopeCategory, projectId: Int64?) throws {
        let bucket = Self.bucket(of: identity, among: bucketCount)
        Self.encode(identity, category: category, projectId: projectId, into: &buffers[bucket])
        if buffers[bucket].count >= Self.bufferLimit { try flush(bucket) }
    }

    /// Writes every gathered record to its file; call before reading.
    mutating func flushAll() throws {
        for bucket in 0..<bucketCount { try flush(bucket) }
        for handle in handles { try handle?.close() }
        handles = Array(repeating: nil, count: bucketCount)
    }

    /// The identities of one bucket, each once, in user-key order, with the category of its first
    /// record and the projects of all of them.
    func identities(inBucket bucket: Int) throws -> [SpilledIdentity] {
        let url = fileURL(bucket)
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: url))
        } catch {
            throw PipelineError(.invalidState, "the dry run cannot read its scratch file \(url.path): \(error)")
        }
        var merged: [String: SpilledIdentity] = [:]
        var reader = Reader(bytes: bytes)
        while !reader.atEnd {
            guard let record = reader.record() else {
                throw PipelineError(
                    .invalidState, "the dry run's scratch file \(url.path) is damaged at byte \(reader.offset)")
            }
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
        try? FileManager.default.removeItem(at: directory)
        owner.release()
    }

    private mutating func flush(_ bucket: Int) throws {
        guard !buffers[bucket].isEmpty else { return }
        do {
            if handles[bucket] == nil {
                let url = fileURL(bucket)
                guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                    throw CocoaError(.fileWriteUnknown)
                }
                handles[bucket] = try FileHandle(forWritingTo: url)
            }
            try handles[bucket]?.write(contentsOf: buffers[bucket])
        } catch {
            throw PipelineError(
                .invalidState, "the dry run cannot write its scratch file \(fileURL(bucket).path): \(error)")
        }
        buffers[bucket].removeAll(keepingCapacity: true)
    }

    private func fileURL(_ bucket: Int) -> URL {
        directory.appendingPathComponent("bucket-\(bucket).bin")
    }

    /// The bucket of an identity: every identity of an email, and every claim of a key, in one.
    static func bucket(of identity: ServerIdentity, among bucketCount: Int) -> Int {
        Int(stableHash(identity.email?.value ?? identity.userKey) % UInt64(max(1, bucketCount)))
    }

    /// FNV-1a over the UTF-8 bytes: the same buckets in every process, unlike `Hasher`.
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
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
            append(UInt64(text.utf8.count), to: &bytes)
            bytes.append(contentsOf: text.utf8)
        }
        for value in [identity.directoryId, identity.directoryPosition.map(Int64.init), projectId] {
            if let value { append(UInt64(bitPattern: value), to: &bytes) }
        }
    }

    private static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// One decoded record.
    struct Record {
        let identity: ServerIdentity
        let category: ScopeCategory
        let projectId: Int64?
    }

    /// Reads records back, checking every length against the bytes left.
    struct Reader {
        let bytes: [UInt8]
        private(set) var offset = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { offset >= bytes.count }

        /// The next record, or `nil` when the bytes do not hold a whole one.
        mutating func record() -> Record? {
            guard offset + 3 <= bytes.count else { return nil }
            let flags = bytes[offset]
            let kindIndex = Int(bytes[offset + 1])
            let categoryIndex = Int(bytes[offset + 2])
            offset += 3
            guard kindIndex < IdentityKind.allCases.count, categoryIndex < ScopeCategory.allCases.count,
                let userKey = text(), let userName = text(), let displayName = text()
            else { return nil }
            var rawEmail: String?
            if flags & 1 != 0 {
                guard let email = text() else { return nil }
                rawEmail = email
            }
            var directoryId: Int64?
            var directoryPosition: Int?
            var projectId: Int64?
            if flags & 2 != 0 {
                guard let value = integer() else { return nil }
                directoryId = Int64(bitPattern: value)
            }
            if flags & 4 != 0 {
                guard let value = integer() else { return nil }
                directoryPosition = Int(Int64(bitPattern: value))
            }
            if flags & 16 != 0 {
                guard let value = integer() else { return nil }
                projectId = Int64(bitPattern: value)
            }
            let identity = ServerIdentity(
                userKey: userKey, userName: userName, displayName: displayName, rawEmail: rawEmail,
                directoryId: directoryId, directoryPosition: directoryPosition, isActive: flags & 8 != 0,
                kind: IdentityKind.allCases[kindIndex])
            return Record(identity: identity, category: ScopeCategory.allCases[categoryIndex], projectId: projectId)
        }

        private mutating func integer() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[offset + index]) << UInt64(8 * index) }
            offset += 8
            return value
        }

        private mutating func text() -> String? {
            guard let length = integer(), length <= UInt64(bytes.count - offset) else { return nil }
            let end = offset + Int(length)
            let value = String(decoding: bytes[offset..<end], as: UTF8.self)
            offset = end
            return value
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

/// An exclusive `flock` on a file, held from creation until ``release()`` (or until the process
/// ends, when the kernel drops it: that is how a killed dry run's directory becomes removable).
final class OwnerLock {
    private var descriptor: Int32

    /// Creates the file at `path` and locks it; throws when it cannot.
    init(path: String) throws {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw PipelineError(.invalidState, "cannot create \(path): \(Self.lastError)") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = Self.lastError
            close(descriptor)
            throw PipelineError(.invalidState, "cannot lock \(path): \(reason)")
        }
        self.descriptor = descriptor
    }

    /// Locks the existing file at `path` when nobody holds it; `nil` when it is missing or held.
    init?(ifFreeAt path: String) {
        let descriptor = open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    /// Unlocks and closes the file; later calls do nothing.
    func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    private static var lastError: String { String(cString: strerror(errno)) }
}
