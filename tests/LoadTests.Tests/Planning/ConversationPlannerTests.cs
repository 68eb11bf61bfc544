using Serving.LoadTests.Clients;
using Serving.LoadTests.Planning;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Tests.Planning;

public sealed class ConversationPlannerTests
{
    private static readonly string[] Adapters = ["a0", "a1", "b0", "b1", "c0", "c1"];

    private static readonly Scenario Chat = new()
    {
        Requests = 100,
        Adapters = new AdapterSpec { Count = 6 },
        OutputTokens = new LengthSpec { Distribution = "fixed", Value = 5 },
        Conversations = new ConversationSpec
        {
            Tenants = 3,
            AdaptersPerTenant = 2,
            SystemPromptTokens = 20,
            Turns = 3,
            TenantKeys = ["key-a", "key-b", "key-c"],
            UserTokens = new LengthSpec { Distribution = "uniform", Min = 2, Max = 6 },
        },
    };

    private static RequestOutcome Answer(PlannedRequest request, params int[] ids) =>
        new(request, "ok", 0, 1, 1, 2, ids.Length, null, ids);

    [Fact]
    public void Next_AfterAnAnswer_PromptIsThePreviousPromptPlusTheAnswerPlusANewTurn()
    {
        var planner = new ConversationPlanner(Chat, "base", Adapters, worker: 4);
        var first = planner.Next(0);
        planner.Record(Answer(first, 7, 8, 9));
        var second = planner.Next(1);

        Assert.Equal(ConversationPlanner.SystemPrompt(Chat, 1), first.PromptTokenIds[..20]);
        Assert.Equal([.. first.PromptTokenIds, 7, 8, 9], second.PromptTokenIds[..(first.PromptTokenIds.Length + 3)]);
        Assert.InRange(second.PromptTokenIds.Length - first.PromptTokenIds.Length - 3, 2, 6);
        Assert.Equal(first.Model, second.Model);
        Assert.Equal("key-b", second.ApiKey);
        Assert.Contains(first.Model, (string[])["b0", "b1"]);
    }

    [Fact]
    public void Record_LastTurnOrAFailure_StartsAFreshConversationWithTheSystemPromptOnly()
    {
        var planner = new ConversationPlanner(Chat, "base", Adapters, worker: 0);
        var turns = new List<PlannedRequest>();
        for (int i = 0; i < 3; i++)
        {
            turns.Add(planner.Next(i));
            planner.Record(Answer(turns[^1], 1, 2));
        }

        var fresh = planner.Next(3);
        Assert.True(fresh.PromptTokenIds.Length <= 20 + 6, $"{fresh.PromptTokenIds.Length} tokens: the history was kept past the last turn");
        Assert.True(turns[2].PromptTokenIds.Length > turns[1].PromptTokenIds.Length);

        planner.Record(new RequestOutcome(fresh, "503", 0, double.NaN, double.NaN, 1, 0, "unavailable"));
        Assert.True(planner.Next(4).PromptTokenIds.Length <= 20 + 6);
    }

    [Fact]
    public void Next_WorkersOfOneTenant_ShareTheSystemPromptAndTenantsDoNot()
    {
        var (a, b, other) = (new ConversationPlanner(Chat, "base", Adapters, 0), new ConversationPlanner(Chat, "base", Adapters, 3), new ConversationPlanner(Chat, "base", Adapters, 1));
        var (x, y, z) = (a.Next(0), b.Next(1), other.Next(2));

        Assert.Equal(x.PromptTokenIds[..20], y.PromptTokenIds[..20]);
        Assert.NotEqual(x.PromptTokenIds[..20], z.PromptTokenIds[..20]);
        Assert.NotEqual(x.PromptTokenIds[20..], y.PromptTokenIds[20..]);
    }

    [Fact]
    public void Next_NoTenantAdapters_UsesTheBaseModel()
    {
        var scenario = Chat with { Conversations = Chat.Conversations! with { AdaptersPerTenant = 0, TenantKeys = null } };
        var request = new ConversationPlanner(scenario, "base", [], 2).Next(0);

        Assert.Equal(RequestKind.Base, request.Kind);
        Assert.Equal("base", request.Model);
        Assert.Null(request.ApiKey);
    }
}
