using Vip.Daemons.Hosting;

return await Vipd.RunAsync(args).ConfigureAwait(false);
