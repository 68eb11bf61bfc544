namespace Serving.Engine.Constraints;

/// <summary>
/// Drops from a <see cref="ByteNfa"/> under construction what can never complete, once calls exist or a builder says its
/// fragment may lead nowhere (<see cref="ByteNfa.MayHaveDeadEnds"/>): a machine is
/// <em>productive</em> when some path leads from its start to its end (through calls only into productive machines), and
/// a state is <em>live</em> when a path leads from it to the end of the machine it belongs to (or to the accept state).
/// Moves into states that are not live, and calls into machines that are not productive or that return to a state that is
/// not live, are removed. Why: without it the mask would allow a token that starts a branch no text can finish (a rule
/// such as <c>x ::= "c" x</c>), and a constrained output could run to its length limit incomplete.
/// </summary>
/// <remarks>One backward pass from every end: linear in the automaton's moves.</remarks>
internal static class NfaPruning
{
    /// <summary>Filters the move lists in place (each list's order kept) and returns which states are live.</summary>
    public static bool[] Prune(int states, int accept, List<int> epsilonFrom, List<int> epsilonTo, List<int> edgeFrom, List<int> edgeTo,
        List<byte>[] edgeRanges, List<int> callFrom, List<int> callMachine, List<int> callReturn, List<int> machineStart, List<int> machineEnd)
    {
        var predecessors = Csr(states, [epsilonTo, edgeTo], [epsilonFrom, edgeFrom]);
        var callsReturningTo = Csr(states, [callReturn], [Indices(callReturn.Count)]);
        var callsInto = Csr(machineStart.Count, [callMachine], [Indices(callMachine.Count)]);
        var machineStartingAt = new int[states];
        Array.Fill(machineStartingAt, -1);
        for (int m = 0; m < machineStart.Count; m++)
            machineStartingAt[machineStart[m]] = m;

        var live = new bool[states];
        var productive = new bool[machineStart.Count];
        var work = new Stack<int>();
        void Mark(int s)
        {
            if (!live[s])
            {
                live[s] = true;
                work.Push(s);
            }
        }

        Mark(accept);
        foreach (int end in machineEnd)
            Mark(end);
        while (work.Count > 0)
        {
            int s = work.Pop();
            for (int i = predecessors.Start[s]; i < predecessors.Start[s + 1]; i++)
                Mark(predecessors.Items[i]);
            for (int i = callsReturningTo.Start[s]; i < callsReturningTo.Start[s + 1]; i++)
            {
                int call = callsReturningTo.Items[i];
                if (productive[callMachine[call]])
                    Mark(callFrom[call]);
            }

            if (machineStartingAt[s] is int m && m >= 0)
            {
                productive[m] = true;
                for (int i = callsInto.Start[m]; i < callsInto.Start[m + 1]; i++)
                {
                    int call = callsInto.Items[i];
                    if (live[callReturn[call]])
                        Mark(callFrom[call]);
                }
            }
        }

        var keepEpsilon = epsilonTo.Select(t => live[t]).ToArray();
        FilterByIndex(keepEpsilon, epsilonFrom, epsilonTo);
        var keepEdge = edgeTo.Select(t => live[t]).ToArray();
        FilterByIndex(keepEdge, edgeFrom, edgeTo);
        FilterByIndex(keepEdge, edgeRanges);
        var keepCall = Enumerable.Range(0, callFrom.Count).Select(c => productive[callMachine[c]] && live[callReturn[c]]).ToArray();
        FilterByIndex(keepCall, callFrom, callMachine, callReturn);
        return live;
    }

    private static List<int> Indices(int count) => [.. Enumerable.Range(0, count)];

    /// <summary>Compressed rows: for each key k, the values whose key list entry is k (several lists, concatenated).</summary>
    private static (int[] Start, int[] Items) Csr(int keys, List<int>[] keyLists, List<int>[] valueLists)
    {
        var start = new int[keys + 1];
        foreach (var list in keyLists)
            foreach (int k in list)
                start[k + 1]++;
        for (int k = 0; k < keys; k++)
            start[k + 1] += start[k];
        var next = start[..keys];
        var items = new int[start[keys]];
        for (int l = 0; l < keyLists.Length; l++)
            for (int i = 0; i < keyLists[l].Count; i++)
                items[next[keyLists[l][i]]++] = valueLists[l][i];
        return (start, items);
    }

    private static void FilterByIndex<T>(bool[] keep, params List<T>[] lists)
    {
        foreach (var list in lists)
        {
            int at = 0;
            for (int i = 0; i < list.Count; i++)
                if (keep[i])
                    list[at++] = list[i];
            list.RemoveRange(at, list.Count - at);
        }
    }
}
