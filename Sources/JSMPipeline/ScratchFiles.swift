import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A directory of scratch files under the system's temporary directory (`TMPDIR` chooses it),
/// owned by the process that made it: the dry run's scope and verify's recounts live in one so
/// that a scope of any size is never held in memory whole.
///
/// The directory holds an ``ownerLockName`` file that its owner keeps locked (`flock`) until
/// ``remove()``. It is built under a hidden name and renamed once locked, so a directory named
/// with the owner's prefix whose lock anyone can take belongs to a process that ended without
/// removing it (killed, or its host lost power): ``removeAbandoned(prefix:in:)`` removes those.
struct ScratchDirectory {
    /// The file in a scratch directory that its owner holds locked while it lives.
    static let ownerLockName = "owner.lock"

    /// The directory; its files are the owner's to name.
    let url: URL
    private let owner: OwnerLock

    /// A new directory `prefix` + a UUID under `parent`; `purpose` names the owner in errors.
    init(prefix: String, parent: URL = FileManager.default.temporaryDirectory, purpose: String) throws {
        let name = prefix + UUID().uuidString
        url = parent.appendingPathComponent(name, isDirectory: true)
        let building = parent.appendingPathComponent(".\(name).partial", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: building, withIntermediateDirectories: true)
            owner = try OwnerLock(path: building.appendingPathComponent(Self.ownerLockName).path)
            try FileManager.default.moveItem(at: building, to: url)
        } catch {
            try? FileManager.default.removeItem(at: building)
            throw PipelineError(.invalidState, "\(purpose) cannot create its scratch directory \(url.path): \(error)")
        }
    }

    /// Removes the directories named `prefix`... under `parent` that no live process holds, and
    /// returns them. A directory without an ``ownerLockName`` file is left alone: this code did
    /// not make it.
    static func removeAbandoned(prefix: String, in parent: URL = FileManager.default.temporaryDirectory) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
        var removed: [URL] = []
        for name in names where name.hasPrefix(prefix) {
            let candidate = parent.appendingPathComponent(name, isDirectory: true)
            guard let lock = OwnerLock(ifFreeAt: candidate.appendingPathComponent(ownerLockName).path) else {
                continue
            }
            // Removed while the lock is held, so no other process removes it at the same time.
            if (try? FileManager.default.removeItem(at: candidate)) != nil { removed.append(candidate) }
            lock.release()
        }
        return removed
    }

    /// Deletes the directory and everything in it, then gives up its lock.
    func remove() {
        try? FileManager.default.removeItem(at: url)
        owner.release()
    }
}

/// Records appended to one of ``bucketCount`` files of a scratch directory, the caller choosing
/// the file (by a stable hash of what must be read back together). Each file's records gather in
/// a buffer of ``bufferLimit`` bytes and are written in one call; a file is read back whole, so a
/// reader holds one bucket's records at a time.
struct BucketFiles {
    /// Bytes a bucket gathers before it is appended to its file.
    static let bufferLimit = 32 << 10

    /// Files the records are spread over.
    let bucketCount: Int
    private let directory: URL
    private let name: String
    private let purpose: String
    private var buffers: [[UInt8]]
    private var handles: [FileHandle?]

    /// Files `name`-0.bin ... in `directory`; `purpose` names the owner in errors.
    init(in directory: URL, name: String, bucketCount: Int, purpose: String) {
        self.bucketCount = max(1, bucketCount)
        self.directory = directory
        self.name = name
        self.purpose = purpose
        buffers = Array(repeating: [], count: self.bucketCount)
        handles = Array(repeating: nil, count: self.bucketCount)
    }

    /// Appends to `bucket` what `encode` writes.
    mutating func append(to bucket: Int, _ encode: (inout [UInt8]) -> Void) throws {
        encode(&buffers[bucket])
        if buffers[bucket].count >= Self.bufferLimit { try flush(bucket) }
    }

    /// Writes every gathered record to its file and closes the files; call before reading.
    mutating func flushAll() throws {
        for bucket in 0..<bucketCount { try flush(bucket) }
        for handle in handles { try handle?.close() }
        handles = Array(repeating: nil, count: bucketCount)
    }

    /// Every byte written to `bucket`, empty when nothing was.
    func contents(of bucket: Int) throws -> [UInt8] {
        let url = fileURL(bucket)
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        do {
            return [UInt8](try Data(contentsOf: url))
        } catch {
            throw PipelineError(.invalidState, "\(purpose) cannot read its scratch file \(url.path): \(error)")
        }
    }

    /// The error for a record of `bucket` that does not decode at `offset`.
    func damaged(_ bucket: Int, at offset: Int) -> PipelineError {
        PipelineError(.invalidState, "\(purpose)'s scratch file \(fileURL(bucket).path) is damaged at byte \(offset)")
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
                .invalidState, "\(purpose) cannot write its scratch file \(fileURL(bucket).path): \(error)")
        }
        buffers[bucket].removeAll(keepingCapacity: true)
    }

    private func fileURL(_ bucket: Int) -> URL {
        directory.appendingPathComponent("\(name)-\(bucket).bin")
    }

    /// FNV-1a over the UTF-8 bytes: the same bucket in every process, unlike `Hasher`.
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// The scratch records' encoding: little-endian 64-bit integers and length-prefixed UTF-8.
enum ScratchBytes {
    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    static func append(_ text: String, to bytes: inout [UInt8]) {
        append(UInt64(text.utf8.count), to: &bytes)
        bytes.append(contentsOf: text.utf8)
    }

    /// Reads values back, checking every length against the bytes left; `nil` when they do not
    /// hold a whole value.
    struct Reader {
        let bytes: [UInt8]
        private(set) var offset = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { offset >= bytes.count }

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func integer() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[offset + index]) << UInt64(8 * index) }
            offset += 8
            return value
        }

        mutating func text() -> String? {
            guard let length = integer(), length <= UInt64(bytes.count - offset) else { return nil }
            let end = offset + Int(length)
            let value = String(decoding: bytes[offset..<end], as: UTF8.self)
            offset = end
            return value
        }
    }
}

/// An exclusive `flock` on a file, held from creation until ``release()`` (or until the process
/// ends, when the kernel drops it: that is how a killed process's scratch directory becomes
/// removable).
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
