using Microsoft.Extensions.Logging;

namespace Converge.Client;

/// <summary>Fans a client's changes out to its subscribers: collection and conflict events, and watch streams.</summary>
/// <remarks>Subscribers run on the thread that committed the change, after the commit; one that throws is logged and the others still run.</remarks>
internal sealed class ChangeHub<TChange>
{
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private Subscription[] _subscriptions = [];
    private bool _completed;

    public ChangeHub(ILogger logger) => _logger = logger;

    /// <summary>Subscribes; <paramref name="completed"/> runs when the client closes.</summary>
    public IDisposable Subscribe(Action<TChange> onChange, Action? completed = null)
    {
        var subscription = new Subscription(this, onChange, completed);
        lock (_lock)
        {
            if (_completed)
            {
                completed?.Invoke();
                return subscription;
            }

            _subscriptions = [.. _subscriptions, subscription];
        }

        return subscription;
    }

    public void Publish(TChange change)
    {
        foreach (var subscription in Volatile.Read(ref _subscriptions))
        {
            try
            {
                subscription.OnChange(change);
            }
            catch (Exception e)
            {
                Log.HandlerFailed(_logger, e);
            }
        }
    }

    public void Publish(IEnumerable<TChange> changes)
    {
        foreach (var change in changes)
        {
            Publish(change);
        }
    }

    /// <summary>Ends every subscription: watch streams finish.</summary>
    public void Complete()
    {
        Subscription[] subscriptions;
        lock (_lock)
        {
            _completed = true;
            subscriptions = _subscriptions;
            _subscriptions = [];
        }

        foreach (var subscription in subscriptions)
        {
            subscription.Completed?.Invoke();
        }
    }

    private void Remove(Subscription subscription)
    {
        lock (_lock)
        {
            _subscriptions = Array.FindAll(_subscriptions, s => !ReferenceEquals(s, subscription));
        }
    }

    private sealed class Subscription(ChangeHub<TChange> hub, Action<TChange> onChange, Action? completed) : IDisposable
    {
        public Action<TChange> OnChange { get; } = onChange;

        public Action? Completed { get; } = completed;

        public void Dispose() => hub.Remove(this);
    }
}

/// <summary>Raises .NET events so that one handler's exception neither reaches the writer nor keeps the other handlers from running.</summary>
internal static class Events
{
    public static void Raise(EventHandler? handlers, object sender, ILogger logger)
    {
        if (handlers is null)
        {
            return;
        }

        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler)handler)(sender, EventArgs.Empty);
            }
            catch (Exception e)
            {
                Log.HandlerFailed(logger, e);
            }
        }
    }

    public static void Raise<TArgs>(EventHandler<TArgs>? handlers, object sender, TArgs args, ILogger logger)
    {
        if (handlers is null)
        {
            return;
        }

        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler<TArgs>)handler)(sender, args);
            }
            catch (Exception e)
            {
                Log.HandlerFailed(logger, e);
            }
        }
    }
}
