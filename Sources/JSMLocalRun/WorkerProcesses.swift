import Foundation
import Synchronization

/// Worker processes (`jsm-migrate worker`) started by the demo, the tests and the benchmark: each
/// its own OS process with its own broker connection, as operators run them.
public final class WorkerProcesses: Sendable {
    private let processes: Mutex<[ProcessBox]>

    private init(_ processes: [ProcessBox]) {
        self.processes = Mutex(processes)
    }

    /// Starts `count` processes of `executable`; `arguments(i)` are the i-th one's arguments, and
    /// its standard output and error go to `logDirectory/<logName>-<i>.log`.
    public static func spawn(
        executable: URL, count: Int, arguments: (Int) -> [String], environment: [String: String],
        logDirectory: String, logName: String = "worker"
    ) throws -> WorkerProcesses {
        var started: [ProcessBox] = []
        for index in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments(index)
            process.environment = environment
            let logPath = (logDirectory as NSString).appendingPathComponent("\(logName)-\(index + 1).log")
            guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
                throw LocalRunError("cannot create \(logPath)")
            }
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                for box in started { box.process.terminate() }
                throw LocalRunError("cannot start \(executable.path): \(error)")
            }
            started.append(ProcessBox(process: process))
        }
        return WorkerProcesses(started)
    }

    /// Process ids, in start order.
    public var processIdentifiers: [Int32] { processes.withLock { $0.map(\.process.processIdentifier) } }

    /// Processes that have exited, with their status.
    public var exited: [(index: Int, status: Int32)] {
        processes.withLock { boxes in
            boxes.enumerated().compactMap { index, box in
                box.process.isRunning ? nil : (index, box.process.terminationStatus)
            }
        }
    }

    /// The peak resident set (VmHWM) of each running process in KiB, from /proc.
    public var peakResidentKiB: [Int] {
        processIdentifiers.map { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
            else { return 0 }
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
    }

    /// The CPU time (user + system) each running process has used so far, in seconds, from
    /// /proc; 0 for a process that has exited.
    public var cpuSeconds: [Double] {
        processIdentifiers.map(processCPUSeconds)
    }

    /// SIGTERM to every process; waits up to `timeout` for them to exit, then SIGKILL.
    public func terminate(timeout: Duration = .seconds(10)) async {
        let boxes = processes.withLock { $0 }
        for box in boxes where box.process.isRunning { box.process.terminate() }
        let deadline = ContinuousClock.now + timeout
        while boxes.contains(where: { $0.process.isRunning }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for box in boxes where box.process.isRunning { kill(box.process.processIdentifier, SIGKILL) }
        for box in boxes { box.process.waitUntilExit() }
    }
}

/// The CPU time (user + system) process `pid` has used so far, in seconds, from /proc/PID/stat;
/// 0 when it cannot be read.
public func processCPUSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let afterName = stat.lastIndex(of: ")")
    else { return 0 }
    // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: afterName)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// A Foundation `Process`, only touched under the owner's mutex or after it has been started.
private final class ProcessBox: @unchecked Sendable {
    let process: Process
    init(process: Process) { self.process = process }
}
