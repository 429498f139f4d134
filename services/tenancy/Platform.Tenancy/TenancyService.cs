namespace Platform.Tenancy;

public static class TenancyService
{
    public const string Name = "tenancy";

    public const string Schema = "tenancy";
}
