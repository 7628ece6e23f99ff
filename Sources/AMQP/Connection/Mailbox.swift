import CRabbitMQ
import Glibc
import Synchronization

/// A request for the connection thread, with the continuation that receives its answer.
enum Command: Sendable {
    case declare(AMQPTopology, CheckedContinuation<Void, any Error>)
    case checkTopology(AMQPTopology, CheckedContinuation<Void, any Error>)
    case queueCounts(String, CheckedContinuation<QueueCounts, any Error>)
    case deleteQueue(String, CheckedContinuation<UInt32, any Error>)
    case purgeQueue(String, CheckedContinuation<UInt32, any Error>)
    case deleteExchange(String, CheckedContinuation<Void, any Error>)
    case publish([OutboundMessage], CheckedContinuation<Void, any Error>)
    case consume(ConsumerRequest, CheckedContinuation<Void, any Error>)
    case cancelConsumer(Int)
    /// Ends a consumer's deliveries (basic.cancel) but keeps its channel, so that deliveries
    /// already handed out can still be acknowledged.
    case stopConsumer(Int)
    /// Ends the connection; the continuation, if any, resumes once the thread has finished.
    case close(CheckedContinuation<Void, Never>?)

    /// Whether sending the request a second time, on a new connection, asks for nothing more than
    /// sending it once: declares, passive checks and counts. Deletes and purges are not: their
    /// first attempt may have happened, and their answer (a count) would then be wrong.
    var isRepeatable: Bool {
        switch self {
        case .declare, .checkTopology, .queueCounts: return true
        default: return false
        }
    }

    /// Answers the request with an error; used when the connection is gone for good.
    func fail(_ error: AMQPError) {
        switch self {
        case .declare(_, let c): c.resume(throwing: error)
        case .checkTopology(_, let c): c.resume(throwing: error)
        case .queueCounts(_, let c): c.resume(throwing: error)
        case .deleteQueue(_, let c): c.resume(throwing: error)
        case .purgeQueue(_, let c): c.resume(throwing: error)
        case .deleteExchange(_, let c): c.resume(throwing: error)
        case .publish(_, let c): c.resume(throwing: error)
        case .consume(let request, let c):
            request.deliveries.finish(throwing: error)
            c.resume(throwing: error)
        case .cancelConsumer, .stopConsumer: break
        case .close(let c): c?.resume()
        }
    }
}

/// What a caller asks for when it starts consuming.
struct ConsumerRequest: Sendable {
    let id: Int
    let queue: String
    let prefetch: UInt16
    let deliveries: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation
}

/// The only way other threads talk to a connection thread.
///
/// Callers append commands and settlements under a lock; the connection thread takes them all at
/// once on each pass of its loop. An eventfd wakes the thread only when it is asleep in `poll`,
/// so a busy connection pays no system call per message.
final class Mailbox: Sendable {
    private struct State {
        var commands: [Command] = []
        var settlements: [Settlement] = []
        var sleeping = false
        var finished: AMQPError?
    }

    private let state = Mutex(State())
    /// Readable when the thread should wake up.
    let wakeDescriptor: Int32

    init() {
        wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    }

    deinit {
        close(wakeDescriptor)
    }

    /// Queues a command; fails it at once when the connection is closed for good.
    func submit(_ command: Command) {
        let outcome: (wake: Bool, closed: AMQPError?) = state.withLock { state in
            if let finished = state.finished { return (false, finished) }
            state.commands.append(command)
            defer { state.sleeping = false }
            return (state.sleeping, nil)
        }
        if let closed = outcome.closed {
            command.fail(closed)
        } else if outcome.wake {
            wake()
        }
    }

    /// Queues an ack, nack or reject. After the connection closed there is nothing to settle:
    /// the broker has already put the message back.
    func submitSettlement(_ settlement: Settlement) {
        let wakeNeeded: Bool = state.withLock { state in
            guard state.finished == nil else { return false }
            state.settlements.append(settlement)
            defer { state.sleeping = false }
            return state.sleeping
        }
        if wakeNeeded { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeDescriptor, &one, 8)
    }

    /// Takes everything queued so far.
    func take(into commands: inout [Command], _ settlements: inout [Settlement]) {
        state.withLock { state in
            swap(&commands, &state.commands)
            swap(&settlements, &state.settlements)
        }
    }

    /// Marks the thread as about to sleep, unless work arrived meanwhile.
    func prepareToSleep() -> Bool {
        state.withLock { state in
            guard state.commands.isEmpty, state.settlements.isEmpty else { return false }
            state.sleeping = true
            return true
        }
    }

    /// Clears the sleeping mark and any pending wake-up.
    func woke() {
        state.withLock { $0.sleeping = false }
        var value: UInt64 = 0
        _ = read(wakeDescriptor, &value, 8)
    }

    /// Refuses all further commands and returns those still queued, for the caller to fail.
    func finish(_ error: AMQPError) -> [Command] {
        state.withLock { state in
            state.finished = error
            state.settlements.removeAll()
            defer { state.commands.removeAll() }
            return state.commands
        }
    }
}
