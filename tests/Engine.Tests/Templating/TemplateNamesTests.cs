using Serving.Engine.Templating;

namespace Serving.Engine.Tests.Templating;

/// <summary>
/// The parser admits a filter or test by its name set; rendering dispatches on a switch. The two must name the same
/// things, or a template would load and then fail at chat time (or be refused while it would render).
/// </summary>
public sealed class TemplateNamesTests
{
    public static TheoryData<string> Filters => new(TemplateFilters.Names);

    public static TheoryData<string> Tests => new(TemplateTests.Names);

    [Theory]
    [MemberData(nameof(Filters))]
    public void Apply_EveryAdmittedFilter_IsImplemented(string name)
    {
        var ex = Record.Exception(() => new TemplateFilters().Apply(name, new List<object?> { 1L, 2L }, [], new Dictionary<string, object?>()));
        Assert.False(ex is TemplateException && ex.Message.Contains($"'{name}' is not supported", StringComparison.Ordinal), ex?.Message);
    }

    [Theory]
    [MemberData(nameof(Tests))]
    public void Apply_EveryAdmittedTest_IsImplemented(string name)
    {
        var ex = Record.Exception(() => TemplateTests.Apply(name, 2L, [2L]));
        Assert.False(ex is TemplateException && ex.Message.Contains($"'{name}' is not supported", StringComparison.Ordinal), ex?.Message);
    }

    [Fact]
    public void Parse_FilterOutsideTheSet_RefusedNamingIt() =>
        Assert.Contains("'nope'", Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("{{ 1 | nope }}")).Message, StringComparison.Ordinal);
}
