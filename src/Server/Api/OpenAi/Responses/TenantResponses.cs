namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>One tenant's stored responses, oldest first, and the bytes they count (<see cref="StoredResponse.Bytes"/>), changed only together.</summary>
internal sealed class TenantResponses
{
    private readonly LinkedList<StoredResponse> _oldestFirst = new();

    public long Bytes { get; private set; }

    public int Count => _oldestFirst.Count;

    public StoredResponse? Oldest => _oldestFirst.First?.Value;

    public LinkedListNode<StoredResponse> Add(StoredResponse response)
    {
        Bytes += response.Bytes;
        return _oldestFirst.AddLast(response);
    }

    public void Remove(LinkedListNode<StoredResponse> node)
    {
        _oldestFirst.Remove(node);
        Bytes -= node.Value.Bytes;
    }
}
