using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Converge.Work;

/// <summary>
/// Tells the scheduler process of a store that another process committed to it, so it looks at once instead of at its
/// next timer. On Linux a datagram to an abstract Unix socket named after the store (a few microseconds, no file);
/// elsewhere a file next to the store that the scheduler watches.
/// </summary>
internal sealed class StoreWakeSignal : IDisposable
{
    private static readonly byte[] s_ping = [1];
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;
    private readonly FileSystemWatcher? _watcher;
    private readonly string _filePath;
    private readonly CancellationTokenSource _stop = new();
    private int _filePending;
    private long _socketRetryAt;
    private int _trailingTouch;
    private long _lastTouch = long.MinValue / 2;

    private StoreWakeSignal(string storePath, Socket? socket, UnixDomainSocketEndPoint? endpoint, FileSystemWatcher? watcher)
    {
        _filePath = storePath + ".wake";
        _socket = socket;
        _endpoint = endpoint;
        _watcher = watcher;
    }

    /// <summary>Listens for signals, on the socket (Linux) and the file; <paramref name="onWake"/> runs on a background thread for each.</summary>
    public static StoreWakeSignal Listen(string storePath, Action onWake)
    {
        Socket? socket = null;
        UnixDomainSocketEndPoint? endpoint = null;
        if (OperatingSystem.IsLinux())
        {
            endpoint = Endpoint(storePath);
            socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            try
            {
                socket.Bind(endpoint);
            }
            catch (SocketException)
            {
                socket.Dispose(); // senders fall back to the file when the socket does not answer
                socket = null;
            }
        }

        FileSystemWatcher? watcher = null;
        try
        {
            var path = storePath + ".wake";
            watcher = new FileSystemWatcher(Path.GetDirectoryName(path)!, Path.GetFileName(path))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.FileName,
            };
            watcher.Changed += (_, _) => onWake();
            watcher.Created += (_, _) => onWake();
            watcher.Error += (_, _) => onWake();
            watcher.EnableRaisingEvents = true;
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException or ArgumentException)
        {
            watcher?.Dispose();
            watcher = null;
        }

        var signal = new StoreWakeSignal(storePath, socket, endpoint, watcher);
        if (socket is not null)
        {
            _ = signal.ReceiveAsync(onWake);
        }

        return signal;
    }

    /// <summary>Prepares to send signals to the store's scheduler, if one runs.</summary>
    /// <param name="storePath">The store.</param>
    /// <param name="useSocket">Whether to try the socket at all; tests turn it off to exercise the file.</param>
    public static StoreWakeSignal Sender(string storePath, bool useSocket = true)
    {
        if (!OperatingSystem.IsLinux() || !useSocket)
        {
            return new StoreWakeSignal(storePath, null, null, null);
        }

        // Non-blocking: when the scheduler's queue is full it has wakes pending already, so a dropped one costs nothing.
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
        return new StoreWakeSignal(storePath, socket, Endpoint(storePath), null);
    }

    /// <summary>Signals the scheduler; never throws, never blocks.</summary>
    /// <remarks>
    /// When nobody answers on the socket, the socket is left alone for a second (a refused send costs an exception)
    /// and the wake file is written instead, at most every 100 ms: enough for a scheduler that watches the file, and
    /// nothing much when no scheduler runs at all.
    /// </remarks>
    public void Signal()
    {
        var now = Environment.TickCount64;
        if (_socket is not null && _watcher is null && now >= Volatile.Read(ref _socketRetryAt))
        {
            try
            {
                _socket.SendTo(s_ping, _endpoint!);
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
            {
                return; // the scheduler's queue is full: it has wakes pending already
            }
            catch (SocketException)
            {
                // Nobody listens: no scheduler runs, or it runs where the socket cannot reach (another network namespace).
                Volatile.Write(ref _socketRetryAt, now + 1_000);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }

        if (now - Volatile.Read(ref _lastTouch) >= 100)
        {
            Volatile.Write(ref _lastTouch, now);
            TouchFile();
        }
        else if (Interlocked.Exchange(ref _trailingTouch, 1) == 0)
        {
            // Within the 100 ms window: one more write at its end, so the last signal of a burst is never dropped.
            _ = Task.Delay(100).ContinueWith(
                static (_, state) =>
                {
                    var signal = (StoreWakeSignal)state!;
                    Volatile.Write(ref signal._trailingTouch, 0);
                    Volatile.Write(ref signal._lastTouch, Environment.TickCount64);
                    signal.TouchFile();
                },
                this,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _socket?.Dispose();
        _watcher?.Dispose();
        _stop.Dispose();
    }

    private static UnixDomainSocketEndPoint Endpoint(string storePath)
    {
        // Abstract names (leading NUL) need no file and vanish with the process; the hash keeps them short and unique.
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(storePath))))[..32];
        return new UnixDomainSocketEndPoint("\0converge-work-" + hash);
    }

    private async Task ReceiveAsync(Action onWake)
    {
        var buffer = new byte[16];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _socket!.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            onWake();
        }
    }

    /// <summary>Writes the wake file off the caller's thread, coalescing bursts into a few writes.</summary>
    private void TouchFile()
    {
        if (Interlocked.Exchange(ref _filePending, 1) == 1)
        {
            return;
        }

        _ = Task.Run(() =>
        {
            while (Interlocked.Exchange(ref _filePending, 0) == 1)
            {
                try
                {
                    File.WriteAllText(_filePath, Environment.TickCount64.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // The scheduler still finds the work at its next batch or timer; the signal only makes it prompt.
                }
            }
        });
    }
}
