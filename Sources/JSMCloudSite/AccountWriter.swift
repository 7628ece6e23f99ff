import Logging
import ServiceLifecycle
import Synchronization

/// Group commit for account creation: concurrent requests queue their account here, and one
/// writer task inserts whatever has queued up in one statement, then resumes each request with
/// its own result.
///
/// One transaction per request caps SQLite near 20,000 rows/s on this class of machine; one per
/// batch goes far beyond, and a batch is never held back waiting for more (it takes what is there),
/// so a lone request is not slowed down. The queue is bounded: past `queueCapacity` waiting
/// requests, a new one is refused with ``AccountWriterError/overloaded`` (503 with `Retry-After`),
/// which well-behaved clients wait out.
public final class AccountWriter: Service {
    private struct Pending {
        let account: NewSiteAccount
        let continuation: CheckedContinuation<AccountCreation, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var writerWaiting: CheckedContinuation<Void, Never>?
        var accepting = true
    }

    private let state = Mutex(State())
    private let store: any AccountStore
    private let maxBatch: Int
    private let queueCapacity: Int
    private let logger: Logger

    /// A writer in front of `store`, inserting at most `maxBatch` accounts per statement and
    /// holding at most `queueCapacity` waiting requests.
    public init(store: any AccountStore, maxBatch: Int = 500, queueCapacity: Int = 20_000, logger: Logger) {
        self.store = store
        self.maxBatch = max(1, maxBatch)
        self.queueCapacity = max(1, queueCapacity)
        self.logger = logger
    }

    /// Creates an account, or finds the one its (email, type) already has, through the next batch.
    public func create(_ account: NewSiteAccount) async throws -> AccountCreation {
        try await withCheckedThrowingContinuation { continuation in
            enum Admission {
                case queued(CheckedContinuation<Void, Never>?)
                case refused(AccountWriterError)
            }
            let admission = state.withLock { state -> Admission in
                guard state.accepting else { return .refused(.stopped) }
                guard state.pending.count < queueCapacity else { return .refused(.overloaded) }
                state.pending.append(Pending(account: account, continuation: continuation))
                defer { state.writerWaiting = nil }
                return .queued(state.writerWaiting)
            }
            switch admission {
            case .queued(let writer): writer?.resume()
            case .refused(let error): continuation.resume(throwing: error)
            }
        }
    }

    /// Writes batches until shutdown, then finishes what has been queued and stops.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                while let batch = await nextBatch() {
                    await write(batch)
                }
            } onCancel: {
                stopAccepting()
            }
        } onGracefulShutdown: {
            self.stopAccepting()
        }
    }

    private func stopAccepting() {
        let writer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.accepting = false
            defer { state.writerWaiting = nil }
            return state.writerWaiting
        }
        writer?.resume()
    }

    /// The next batch: what is queued now (up to `maxBatch`), waiting only when nothing is;
    /// `nil` once stopped with nothing left.
    private func nextBatch() async -> [Pending]? {
        // Each pass either returns or waits for a wake-up that follows a state change (a request
        // queued or the writer stopped), so the loop ends once the queue is drained after a stop.
        while true {
            enum Step {
                case batch([Pending])
                case finished
                case wait
            }
            let step = state.withLock { state -> Step in
                if !state.pending.isEmpty {
                    let count = min(maxBatch, state.pending.count)
                    let batch = Array(state.pending.prefix(count))
                    state.pending.removeFirst(count)
                    return .batch(batch)
                }
                return state.accepting ? .wait : .finished
            }
            switch step {
            case .batch(let batch): return batch
            case .finished: return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if !state.pending.isEmpty || !state.accepting { return true }
                        state.writerWaiting = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private func write(_ batch: [Pending]) async {
        do {
            let results = try await store.insertAccounts(batch.map(\.account))
            for (pending, result) in zip(batch, results) { pending.continuation.resume(returning: result) }
        } catch {
            logger.error("account batch failed", metadata: ["size": "\(batch.count)", "error": "\(error)"])
            for pending in batch { pending.continuation.resume(throwing: error) }
        }
    }
}

/// Why the writer refused a creation; both are temporary, answered 503 with `Retry-After`.
public enum AccountWriterError: Error, Sendable, Hashable {
    /// Too many creations are already waiting.
    case overloaded
    /// The site is shutting down.
    case stopped
}
